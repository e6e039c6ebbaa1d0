// Command devtoken prints an access token for local development, signed like
// the auth service's (HS256, the contract's claims) with JWT_SIGNING_KEY, or
// with the key `make run` generated under ./.data when that is unset.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/acme/customer-platform/internal/devtoken"
)

func main() {
	if err := run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devtoken:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devtoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o devtoken.Options
	fs.StringVar(&o.Role, "role", "customer", "user_role: customer, employee, admin or service")
	fs.StringVar(&o.UserID, "user", "", "user_id (a UUID; random when empty)")
	fs.StringVar(&o.Email, "email", "", "email claim (default derived from the user id)")
	fs.StringVar(&o.FirstName, "first", "Dev", "first_name claim")
	fs.StringVar(&o.LastName, "last", "User", "last_name claim")
	fs.DurationVar(&o.TTL, "ttl", time.Hour, "lifetime")
	defaultDir := ".data"
	if d, ok := getenv("STACK_DATA_DIR"); ok && d != "" {
		defaultDir = d // the same directory `make run` uses
	}
	dataDir := fs.String("data", defaultDir, "where `make run` keeps its generated development secrets (STACK_DATA_DIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, ok := getenv("JWT_SIGNING_KEY")
	if !ok || key == "" {
		k, err := devtoken.KeyFromDataDir(*dataDir)
		if err != nil {
			return errors.Join(errors.New("set JWT_SIGNING_KEY, or run `make run` once so it generates a development key"), err)
		}
		key = k
	}
	tok, o, err := devtoken.Sign([]byte(key), o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "user_id=%s role=%s email=%s expires in %s\n", o.UserID, o.Role, o.Email, o.TTL)
	fmt.Fprintln(stdout, tok)
	return nil
}
