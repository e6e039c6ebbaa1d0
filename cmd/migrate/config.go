package main

import (
	"time"

	"github.com/acme/customer-platform/internal/config"
)

// Config is the migration tool's connection settings, read from the
// environment like the services'.
type Config struct {
	MongoURI     config.Secret `json:"mongodb_uri"`   // MONGODB_URI
	CustomerDB   string        `json:"customer_db"`   // CUSTOMER_DB, the customer service's database
	AuthURL      string        `json:"auth_url"`      // AUTH_URL
	AuthTimeout  time.Duration `json:"auth_timeout"`  // AUTH_TIMEOUT, per call to the auth service
	ClientID     string        `json:"client_id"`     // MIGRATE_CLIENT_ID, the service client of the auth service
	ClientSecret config.Secret `json:"client_secret"` // MIGRATE_CLIENT_SECRET
	Lookups      int           `json:"lookups"`       // MIGRATE_LOOKUPS, concurrent auth calls
	BatchSize    int           `json:"batch_size"`    // MIGRATE_BATCH_SIZE, records per bulk write
	LogLevel     string        `json:"log_level"`     // LOG_LEVEL
}

// LoadConfig reads the configuration through lookup. The defaults are those
// of local development (make run), except the client secret: commands that
// call the auth service need MIGRATE_CLIENT_SECRET.
func LoadConfig(lookup config.Lookup) (Config, error) {
	r := config.New(lookup)
	c := Config{
		MongoURI:     r.Secret("MONGODB_URI", "mongodb://127.0.0.1:27017/"),
		CustomerDB:   r.String("CUSTOMER_DB", "customers"),
		AuthURL:      r.URL("AUTH_URL", "http://127.0.0.1:8001"),
		AuthTimeout:  r.Duration("AUTH_TIMEOUT", 5*time.Second),
		ClientID:     r.String("MIGRATE_CLIENT_ID", "migrate"),
		ClientSecret: r.Secret("MIGRATE_CLIENT_SECRET", ""),
		Lookups:      r.Int("MIGRATE_LOOKUPS", 8),
		BatchSize:    r.Int("MIGRATE_BATCH_SIZE", 500),
		LogLevel:     r.String("LOG_LEVEL", "info"),
	}
	r.Check(c.AuthTimeout > 0, "AUTH_TIMEOUT", "must be positive")
	r.Check(c.Lookups >= 1 && c.Lookups <= 256, "MIGRATE_LOOKUPS", "want 1..256")
	r.Check(c.BatchSize >= 1 && c.BatchSize <= 10000, "MIGRATE_BATCH_SIZE", "want 1..10000")
	r.Check(c.CustomerDB != "", "CUSTOMER_DB", "must name a database")
	if err := r.Err(); err != nil {
		return Config{}, err
	}
	return c, nil
}
