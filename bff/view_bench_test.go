package bff_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/acme/customer-platform/bff"
)

// BenchmarkViewJSON is the encoding of a merged view: a concatenation of
// the parts as the services sent them.
func BenchmarkViewJSON(b *testing.B) {
	v := bff.View{User: viewUser, Profile: viewProfile}
	b.ReportAllocs()
	b.SetBytes(int64(len(v.JSON())))
	for b.Loop() {
		_ = v.JSON()
	}
}

// BenchmarkViewJSONEncodingJSON is the same view through encoding/json, for
// comparison (RawMessage members are validated and compacted again).
func BenchmarkViewJSONEncodingJSON(b *testing.B) {
	v := bff.View{User: viewUser, Profile: viewProfile}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseView decodes a view body back into its parts.
func BenchmarkParseView(b *testing.B) {
	body := bff.View{User: viewUser, Profile: viewProfile}.JSON()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := bff.ParseView(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOriginMerge is a miss's work besides the network: both fetches
// (instant fakes), the ownership checks, the merge and its encoding.
func BenchmarkOriginMerge(b *testing.B) {
	o := bff.NewOrigin(staticUsers(viewUser, nil), staticProfiles(viewProfile, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := o.View(ctx, viewUserID, "tok"); err != nil {
			b.Fatal(err)
		}
	}
}
