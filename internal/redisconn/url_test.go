package redisconn

import (
	"slices"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	type want struct {
		addrs        []string
		db           int
		cluster      bool
		master       string
		user, pass   string
		sentinelPass string
		tls          bool
	}
	for raw, w := range map[string]want{
		"redis://localhost:6379/0":                               {addrs: []string{"localhost:6379"}},
		"redis://r.example/3":                                    {addrs: []string{"r.example:6379"}, db: 3},
		"rediss://u:p@r.example:6380":                            {addrs: []string{"r.example:6380"}, user: "u", pass: "p", tls: true},
		"redis-cluster://a:7000,b:7001/":                         {addrs: []string{"a:7000", "b:7001"}, cluster: true},
		"redis-cluster://a:7000":                                 {addrs: []string{"a:7000"}, cluster: true},
		"rediss-cluster://:pw@a:7000,b":                          {addrs: []string{"a:7000", "b:6379"}, cluster: true, pass: "pw", tls: true},
		"redis-sentinel://s1:26379,s2:26379/mymaster":            {addrs: []string{"s1:26379", "s2:26379"}, master: "mymaster"},
		"redis-sentinel://:pw@s1/mymaster/2?sentinel_password=x": {addrs: []string{"s1:6379"}, master: "mymaster", db: 2, pass: "pw", sentinelPass: "x"},
	} {
		o, err := ParseURL(raw)
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if !slices.Equal(o.Addrs, w.addrs) || o.DB != w.db || o.IsClusterMode != w.cluster || o.MasterName != w.master ||
			o.Username != w.user || o.Password != w.pass || o.SentinelPassword != w.sentinelPass || (o.TLSConfig != nil) != w.tls {
			t.Errorf("%s: got addrs %v db %d cluster %v master %q user %q pass %q sentinel %q tls %v", raw,
				o.Addrs, o.DB, o.IsClusterMode, o.MasterName, o.Username, o.Password, o.SentinelPassword, o.TLSConfig != nil)
		}
	}
	for raw, msg := range map[string]string{
		"http://localhost":               "scheme",
		"redis://a:1,b:2/0":              "one node",
		"redis://localhost/x":            "database",
		"redis-cluster://a:1/0":          "no path",
		"redis-sentinel://s1:26379":      "master",
		"redis-sentinel://s1/m/x":        "database",
		"redis-sentinel://s1/m/0/extra":  "master",
		"redis://:secret@local host:1/0": "not a URL",
		"redis-fancy://a:1":              "scheme",
	} {
		_, err := ParseURL(raw)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want one containing %q", raw, err, msg)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error quotes the password: %v", raw, err)
		}
	}
}
