package mongodb

import "testing"

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
