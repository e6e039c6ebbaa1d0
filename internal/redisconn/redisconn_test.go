package redisconn

import "testing"

func TestOpenIfSet(t *testing.T) {
	t.Parallel()
	c, err := OpenIfSet("", Options{})
	if c != nil || err != nil {
		t.Fatalf("OpenIfSet(\"\") = %v, %v; want no client and no error", c, err)
	}
	Close(c) // no client: nothing to close
	if _, err := OpenIfSet("not a url", Options{}); err == nil {
		t.Fatal("OpenIfSet accepted a malformed URL")
	}
	c, err = OpenIfSet("redis://127.0.0.1:1/0", Options{})
	if c == nil || err != nil {
		t.Fatalf("OpenIfSet(url) = %v, %v; want a client", c, err)
	}
	Close(c)
}
