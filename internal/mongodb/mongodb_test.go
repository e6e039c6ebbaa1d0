package mongodb

import (
	"testing"

	"go.mongodb.org/mongo-driver/mongo/readpref"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"mongodb://127.0.0.1:27017/":                     "mongodb://127.0.0.1:27017/",
		"mongodb://user:p%40ss@db1:27017,db2/x?rs=r":     "mongodb://****@db1:27017,db2/x?rs=r",
		"mongodb+srv://u:secret@cluster.example.net/app": "mongodb+srv://****@cluster.example.net/app",
		"garbage": "(invalid uri)",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReplicaSetDefaults: without a choice in the URI, writes are
// acknowledged by a majority, reads go to the primary and both are retried
// once across a failover; the URI's own choice wins.
func TestReplicaSetDefaults(t *testing.T) {
	t.Parallel()
	o := clientOptions("mongodb://db1,db2,db3/?replicaSet=rs0", "test")
	if o.WriteConcern == nil || o.WriteConcern.W != "majority" {
		t.Errorf("write concern %+v, want majority", o.WriteConcern)
	}
	if o.ReadPreference == nil || o.ReadPreference.Mode() != readpref.PrimaryMode {
		t.Errorf("read preference %v, want primary", o.ReadPreference)
	}
	if o.RetryWrites == nil || !*o.RetryWrites || o.RetryReads == nil || !*o.RetryReads {
		t.Errorf("retry writes %v, reads %v; want both", o.RetryWrites, o.RetryReads)
	}
	o = clientOptions("mongodb://db1/?w=1&readPreference=primaryPreferred&retryWrites=false", "test")
	if o.WriteConcern.W != 1 || o.ReadPreference.Mode() != readpref.PrimaryPreferredMode || *o.RetryWrites {
		t.Errorf("the URI's choices were overridden: w %v, read %v, retryWrites %v", o.WriteConcern.W, o.ReadPreference.Mode(), *o.RetryWrites)
	}
}
