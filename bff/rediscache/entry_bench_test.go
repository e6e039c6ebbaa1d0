package rediscache

import (
	"testing"

	"github.com/acme/customer-platform/bff"
)

const (
	benchUserID = "0b6f1c2e-4f9a-4c1e-9d3b-6a2f8e7d5c41"
	benchEpoch  = "42"
)

var benchBody = bff.View{
	User:    []byte(`{"id":"` + benchUserID + `","email":"ada@example.com","first_name":"Ada","last_name":"Lovelace","phone_number":"+15555550100","user_role":"customer","date_joined":"2024-01-02T03:04:05Z"}`),
	Profile: []byte(`{"id":"5d1c0b7e-3a2f-4e6d-9c8b-7a6f5e4d3c2b","user_id":"` + benchUserID + `","street_address":"742 Evergreen Terrace","city":"Springfield","state":"OR","postal_code":"97403","country":"USA","company_name":"","business_type":"","tax_id":"","preferred_contact_method":"email","notification_preferences":{"email":true,"sms":false,"marketing":false},"is_verified":false,"total_services":0,"last_service_date":null}`),
}.JSON()

func TestEntryRoundTrip(t *testing.T) {
	t.Parallel()
	entry := string(encodeEntry(benchUserID, benchEpoch, benchBody))
	body, ok := decodeEntry(benchUserID, benchEpoch, entry)
	if !ok || string(body) != string(benchBody) {
		t.Fatalf("round trip: %v %s", ok, body)
	}
	if body, ok := decodeEntry(benchUserID, "", string(encodeEntry(benchUserID, "", benchBody))); !ok || string(body) != string(benchBody) {
		t.Fatalf("round trip without an epoch: %v %s", ok, body)
	}
	for _, tc := range []struct{ id, epoch, entry string }{
		{"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", benchEpoch, entry}, // another user's entry
		{benchUserID, benchEpoch, benchUserID},                      // no body
		{benchUserID, benchEpoch, benchUserID + "\n42\n"},           // empty body
		{benchUserID, benchEpoch, string(benchBody)},                // no owner
		{benchUserID[:10], benchEpoch, entry},                       // a prefix of the owner is not the owner
		{"", benchEpoch, entry},
		{benchUserID, "43", entry}, // an older epoch
		{benchUserID, "4", entry},  // a prefix of the epoch is not the epoch
		{benchUserID, "", entry},   // an entry of an epoch the cache no longer has
		{benchUserID, "420", entry},
	} {
		if _, ok := decodeEntry(tc.id, tc.epoch, tc.entry); ok {
			t.Fatalf("decodeEntry(%q, %q, %.40q) accepted", tc.id, tc.epoch, tc.entry)
		}
	}
}

// BenchmarkEntryEncode is the serialisation of a view for the cache.
func BenchmarkEntryEncode(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		_ = encodeEntry(benchUserID, benchEpoch, benchBody)
	}
}

// BenchmarkEntryDecode is the deserialisation of a cached view: an owner
// check and one copy of the body, which is then written as it is.
func BenchmarkEntryDecode(b *testing.B) {
	entry := string(encodeEntry(benchUserID, benchEpoch, benchBody))
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	var sink []byte
	for b.Loop() {
		body, ok := decodeEntry(benchUserID, benchEpoch, entry)
		if !ok {
			b.Fatal("decode failed")
		}
		sink = body
	}
	if len(sink) != len(benchBody) {
		b.Fatal("wrong body")
	}
}
