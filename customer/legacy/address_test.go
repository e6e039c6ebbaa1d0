package legacy

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// addressCases are shaped like the legacy data: what people typed into one
// free-text field. want is street|city|state|zip|country|status.
var addressCases = []struct {
	in, want string
}{
	// The canonical forms.
	{"123 Main St, Portland, OR, 97201", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Portland, OR 97201", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Apt 4, Portland, OR 97201", "123 Main St, Apt 4|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Apt 4, Portland, OR, 97201", "123 Main St, Apt 4|Portland|OR|97201|USA|parsed"},
	{"123 Main St Apt 4, Portland, OR 97201", "123 Main St Apt 4|Portland|OR|97201|USA|parsed"},
	{"123 Main St #4, Portland, OR 97201", "123 Main St #4|Portland|OR|97201|USA|parsed"},
	{"500 W Madison St, Suite 1000, Chicago, IL 60661", "500 W Madison St, Suite 1000|Chicago|IL|60661|USA|parsed"},
	{"1600 Pennsylvania Ave NW, Washington, DC 20500", "1600 Pennsylvania Ave NW|Washington|DC|20500|USA|parsed"},
	{"350 Fifth Avenue, New York, NY 10118", "350 Fifth Avenue|New York|NY|10118|USA|parsed"},
	{"1 Infinite Loop, Cupertino, CA 95014", "1 Infinite Loop|Cupertino|CA|95014|USA|parsed"},
	{"PO Box 1234, Boise, ID 83701", "PO Box 1234|Boise|ID|83701|USA|parsed"},
	{"P.O. Box 55, Juneau, AK 99801", "P.O. Box 55|Juneau|AK|99801|USA|parsed"},
	{"PSC 1234, Box 5678, APO, AE 09012", "PSC 1234, Box 5678|APO|AE|09012|USA|parsed"},
	{"4 Privet Dr, Salt Lake City, UT 84101", "4 Privet Dr|Salt Lake City|UT|84101|USA|parsed"},
	{"77 Mass Ave, Cambridge, MA 02139", "77 Mass Ave|Cambridge|MA|02139|USA|parsed"},
	{"10 Elm Ct, Kansas City, MO 64105", "10 Elm Ct|Kansas City|MO|64105|USA|parsed"},
	{"221 B Baker St, Winston-Salem, NC 27101", "221 B Baker St|Winston-Salem|NC|27101|USA|parsed"},
	{"8 Rue Street, Coeur d'Alene, ID 83814", "8 Rue Street|Coeur d'Alene|ID|83814|USA|parsed"},
	{"Acme Corp, 42 Industrial Pkwy, Dayton, OH 45402", "Acme Corp, 42 Industrial Pkwy|Dayton|OH|45402|USA|parsed"},
	{"1 Calle Luna, San Juan, PR 00901", "1 Calle Luna|San Juan|PR|00901|USA|parsed"},
	{"9 Harbor Rd, Hagatna, GU 96910", "9 Harbor Rd|Hagatna|GU|96910|USA|parsed"},

	// Full state names and common abbreviations.
	{"123 Main St, Portland, Oregon 97201", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Portland, Oregon, 97201", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"55 Water St, New York, New York 10041", "55 Water St|New York|NY|10041|USA|parsed"},
	{"200 Capitol Ave, Charleston, West Virginia 25301", "200 Capitol Ave|Charleston|WV|25301|USA|parsed"},
	{"12 Oak Ln, Raleigh, North Carolina 27601", "12 Oak Ln|Raleigh|NC|27601|USA|parsed"},
	{"700 Penn Ave, Washington, District of Columbia 20003", "700 Penn Ave|Washington|DC|20003|USA|parsed"},
	{"3 Bay Rd, Sacramento, Calif. 95814", "3 Bay Rd|Sacramento|CA|95814|USA|parsed"},
	{"3 Bay Rd, Seattle, Wash. 98101", "3 Bay Rd|Seattle|WA|98101|USA|parsed"},
	{"18 Lake St, Eau Claire, Wis 54701", "18 Lake St|Eau Claire|WI|54701|USA|parsed"},
	{"5 Main St, Albany, N.Y. 12207", "5 Main St|Albany|NY|12207|USA|parsed"},
	{"5 Main St, Providence, Rhode Island 02903", "5 Main St|Providence|RI|02903|USA|parsed"},

	// ZIP+4.
	{"123 Main St, Portland, OR 97201-1234", "123 Main St|Portland|OR|97201-1234|USA|parsed"},
	{"123 Main St, Portland, OR, 97201-1234", "123 Main St|Portland|OR|97201-1234|USA|parsed"},
	{"123 Main St, Portland, OR 972011234", "123 Main St|Portland|OR|97201-1234|USA|parsed"},

	// A trailing country.
	{"123 Main St, Portland, OR 97201, USA", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Portland, OR 97201 USA", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Portland, OR 97201, United States", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Portland, OR 97201, United States of America", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Portland, OR 97201, US", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Portland, OR 97201, U.S.A.", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Portland, OR 97201 us", "123 Main St|Portland|OR|97201|USA|parsed"},

	// Spaces, line breaks and case.
	{"  123   Main St ,  Portland ,OR   97201  ", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St\nPortland, OR 97201", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St\r\nApt 4\r\nPortland, OR 97201\r\nUSA", "123 Main St, Apt 4|Portland|OR|97201|USA|parsed"},
	{"123 Main St,\n\nPortland,\tOR\t97201", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 main st, portland, or 97201", "123 main st|portland|OR|97201|USA|parsed"},
	{"123 MAIN ST, PORTLAND, OREGON 97201", "123 MAIN ST|PORTLAND|OR|97201|USA|parsed"},
	{"123 Main St,, Portland,, OR 97201", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St; Portland; OR 97201", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Portland OR 97201", "123 Main St|Portland|OR|97201|USA|parsed"},
	{"123 Main St, Portland Oregon 97201", "123 Main St|Portland|OR|97201|USA|parsed"},

	// Parsed in part: flagged for review.
	{"123 Main St Portland, OR 97201", "123 Main St|Portland|OR|97201|USA|partial"},
	{"123 Main St Apt 4 Salem OR 97301", "123 Main St Apt 4|Salem|OR|97301|USA|partial"},
	{"123 Main St, Portland, OR", "123 Main St|Portland|OR||USA|partial"},
	{"123 Main St, Portland, 97201", "123 Main St|Portland||97201|USA|partial"},
	{"123 Main St, Boston, MA 2134", "123 Main St|Boston|MA|2134|USA|partial"},
	{"Portland, OR 97201", "|Portland|OR|97201|USA|partial"},
	{"123 Main St, OR 97201", "123 Main St||OR|97201|USA|partial"},
	{"123 Main St, 456, OR 97201", "123 Main St|456|OR|97201|USA|partial"},
	{"OR 97201", "||OR|97201|USA|partial"},
	{"123 Main St, Springfield, USA", "123 Main St|Springfield|||USA|partial"},
	{"Somewhere Road OR 97201", "Somewhere Road||OR|97201|USA|partial"},

	// Not US: kept whole, with the country when recognisable.
	{"10 Downing St, London SW1A 2AA, United Kingdom", "10 Downing St, London SW1A 2AA, United Kingdom||||United Kingdom|foreign"},
	{"10 Downing St, London, UK", "10 Downing St, London, UK||||United Kingdom|foreign"},
	{"Unter den Linden 77, 10117 Berlin, Germany", "Unter den Linden 77, 10117 Berlin, Germany||||Germany|foreign"},
	{"1 Chome-1-2 Oshiage, Sumida City, Tokyo 131-0045, Japan", "1 Chome-1-2 Oshiage, Sumida City, Tokyo 131-0045, Japan||||Japan|foreign"},
	{"290 Bremner Blvd, Toronto, ON M5V 3L9, Canada", "290 Bremner Blvd, Toronto, ON M5V 3L9, Canada||||Canada|foreign"},
	{"290 Bremner Blvd, Toronto, ON M5V 3L9", "290 Bremner Blvd, Toronto, ON M5V 3L9||||Canada|foreign"},
	{"1000 Rue Sherbrooke\nMontréal QC H3A3G4", "1000 Rue Sherbrooke, Montréal QC H3A3G4||||Canada|foreign"},
	{"Av. Paulista 1578, São Paulo, Brasil", "Av. Paulista 1578, São Paulo, Brasil||||Brazil|foreign"},
	{"Paseo de la Reforma 222, CDMX, México", "Paseo de la Reforma 222, CDMX, México||||Mexico|foreign"},
	{"5 Rue de Rivoli, 75001 Paris, FRANCE", "5 Rue de Rivoli, 75001 Paris, FRANCE||||France|foreign"},

	// Nothing to go on.
	{"", "|||||empty"},
	{"   \n\t ", "|||||empty"},
	{",,,", "|||||empty"},
	{"123 Main St, Springfield", "123 Main St, Springfield|||||unparsed"},
	{"see attached", "see attached|||||unparsed"},
	{"12 Elm Ct", "12 Elm Ct|||||unparsed"},
	{"USA", "USA||||USA|unparsed"},
}

func TestParseAddress(t *testing.T) {
	t.Parallel()
	if len(addressCases) < 60 {
		t.Fatalf("want at least 60 cases, have %d", len(addressCases))
	}
	for _, tc := range addressCases {
		t.Run(strings.ReplaceAll(tc.in, "\n", `\n`), func(t *testing.T) {
			t.Parallel()
			p := ParseAddress(tc.in)
			got := strings.Join([]string{p.Street, p.City, p.State, p.PostalCode, p.Country, string(p.Status)}, "|")
			if got != tc.want {
				t.Errorf("ParseAddress(%q)\n got %s\nwant %s (reasons %q)", tc.in, got, tc.want, p.Reasons)
			}
			if (p.Status == AddressParsed) != (len(p.Reasons) == 0) {
				t.Errorf("status %s with reasons %q: only a parsed address has none", p.Status, p.Reasons)
			}
			if p.Confident() != (p.Status == AddressParsed) {
				t.Errorf("Confident() = %v for %s", p.Confident(), p.Status)
			}
			checkReassembles(t, tc.in, p)
		})
	}
}

// words splits text the way an address is compared: lower case, commas,
// semicolons and white space are separators, dots and the ZIP dash do not count.
func words(s string) []string {
	f := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return r == ',' || r == ';' || unicode.IsSpace(r) || unicode.IsControl(r)
	})
	out := f[:0]
	for _, w := range f {
		w = strings.NewReplacer(".", "", "-", "").Replace(w)
		if w != "" {
			out = append(out, w)
		}
	}
	return out
}

// checkReassembles asserts the fuzz property: the fields of a parsed
// address, in order, hold exactly the input's words, and the normalised
// parts agree with the text they came from.
func checkReassembles(t *testing.T, in string, p ParsedAddress) {
	t.Helper()
	var parts []string
	switch p.Status {
	case AddressEmpty:
		if len(words(in)) != 0 || p.Street+p.City+p.State+p.PostalCode+p.Country != "" {
			t.Fatalf("empty result for %q: %+v", in, p)
		}
		return
	case AddressForeign, AddressUnparsed:
		parts = []string{p.Street}
	default:
		parts = []string{p.Street, p.City, p.stateText, p.postalText, p.countryText}
		if p.State != "" {
			if code, ok := stateNames[strings.Join(words(p.stateText), " ")]; !(ok && code == p.State) && !strings.EqualFold(strings.ReplaceAll(p.stateText, ".", ""), p.State) {
				t.Fatalf("state %q from text %q", p.State, p.stateText)
			}
		}
		if p.PostalCode != "" && strings.ReplaceAll(p.PostalCode, "-", "") != strings.ReplaceAll(p.postalText, "-", "") {
			t.Fatalf("postal code %q from text %q", p.PostalCode, p.postalText)
		}
		if p.Country != DefaultCountry {
			t.Fatalf("a US address with country %q", p.Country)
		}
	}
	if got, want := words(strings.Join(parts, " ")), words(in); !slices.Equal(got, want) {
		t.Fatalf("ParseAddress(%q) does not reassemble to its words:\n got %q\nwant %q\n(%+v)", in, got, want, p)
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, tc := range addressCases {
		f.Add(tc.in)
	}
	for _, s := range []string{
		"123 Main St, Portland, OR, 97201", "\xef\xbb\xbf1 A St, B, CA 90001", "#", "#1 #2, #3",
		"., ., .", "U. S. A.", "1 A St, B, OR 97201, U. S. A .", "US", "Apt", "1 Apt 2 3",
		"1 Main St Portland", "a,b,c,d,e,f,g,h", "99999-9999", "97201 OR", "CA", "Canada",
		"ON M5V 3L9", "m5v3l9", "1 A St, B, NY 1234", "1 A St\u00a0B, NY 10001", "\u2028\u2029",
		"1 A St, B, New\nYork 10001", "1\x00A St, B, NY 10001", "ünïcödé strasse 5, zürich, switzerland",
		strings.Repeat("1 Main St, ", 50) + "Portland, OR 97201", string([]byte{0xff, 0xfe, ','}),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if !utf8.ValidString(in) {
			// Invalid bytes are kept as written; the property is about words.
			_ = ParseAddress(in)
			return
		}
		p := ParseAddress(in)
		checkReassembles(t, in, p)
		if p.Status == AddressParsed {
			if p.Street == "" || p.City == "" || p.State == "" || !isZIP(strings.ReplaceAll(p.PostalCode, "-", "")) && !isZIP(p.PostalCode) {
				t.Fatalf("parsed without every part: %+v", p)
			}
		}
	})
}
