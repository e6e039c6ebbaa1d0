package legacy

import (
	"strings"
	"unicode"
)

// AddressStatus says how far a free-text address could be parsed.
type AddressStatus string

// Address statuses. Only AddressParsed is migrated without review.
const (
	// AddressParsed: a US address with street, city, state and ZIP.
	AddressParsed AddressStatus = "parsed"
	// AddressPartial: a US address with a part missing or guessed.
	AddressPartial AddressStatus = "partial"
	// AddressForeign: a non-US address, kept whole in the street, with its
	// country when one is recognisable.
	AddressForeign AddressStatus = "foreign"
	// AddressUnparsed: nothing recognisable; kept whole in the street.
	AddressUnparsed AddressStatus = "unparsed"
	// AddressEmpty: no address at all.
	AddressEmpty AddressStatus = "empty"
)

// DefaultCountry is the country of a US address (the customer service's default).
const DefaultCountry = "USA"

// ParsedAddress is the structured form of a legacy address.
type ParsedAddress struct {
	Street     string        `json:"street_address"`
	City       string        `json:"city"`
	State      string        `json:"state"`
	PostalCode string        `json:"postal_code"`
	Country    string        `json:"country"`
	Status     AddressStatus `json:"status"`
	// Reasons explain every status other than parsed, for the reviewer.
	Reasons []string `json:"reasons,omitempty"`

	// The input's own text of the parts that are normalised in the fields.
	stateText, postalText, countryText string
}

// Confident reports whether the address was parsed whole, with nothing guessed.
func (p ParsedAddress) Confident() bool { return p.Status == AddressParsed }

// token is one word of an address and the comma-separated segment it is in.
type token struct {
	text string
	seg  int
}

// ParseAddress parses a free-text address. US forms are recognised
// ("street, city, ST zip", "street, city, ST, zip", "street, Apt 4, city, ST
// zip", full state names, ZIP+4, a trailing USA/US/United States, any case,
// extra spaces and line breaks); a non-US address is kept whole in Street
// with its country when recognisable. It never fails: anything it cannot
// parse with confidence says so in Status and Reasons.
func ParseAddress(s string) ParsedAddress {
	toks := tokenize(s)
	if len(toks) == 0 {
		return ParsedAddress{Status: AddressEmpty, Reasons: []string{"the address is empty"}}
	}
	whole := join(toks)

	// A trailing country.
	p := ParsedAddress{}
	explicitUS := false
	if n, name, us := matchCountry(toks); n > 0 {
		if !us {
			return ParsedAddress{Street: whole, Country: name, Status: AddressForeign,
				Reasons: []string{"a non-US address (" + name + "): kept whole in street_address"}}
		}
		explicitUS = true
		p.countryText = join(toks[len(toks)-n:])
		toks = toks[:len(toks)-n]
	}
	if !explicitUS && isCanadian(toks) {
		return ParsedAddress{Street: whole, Country: "Canada", Status: AddressForeign,
			Reasons: []string{"a Canadian address (province and postal code): kept whole in street_address"}}
	}
	if len(toks) == 0 {
		return ParsedAddress{Street: whole, Country: DefaultCountry, Status: AddressUnparsed,
			Reasons: []string{"the address names only a country"}}
	}

	// The ZIP code.
	var reasons []string
	zipTok := -1
	if last := toks[len(toks)-1].text; isZIP(last) {
		zipTok = len(toks) - 1
	} else if isDigits(last) && len(last) == 4 && len(toks) > 1 {
		if _, n := matchState(toks[:len(toks)-1], true); n > 0 {
			zipTok = len(toks) - 1
			reasons = append(reasons, "the ZIP code "+last+" has 4 digits (a lost leading zero?)")
		}
	}
	rest := toks
	if zipTok >= 0 {
		p.postalText = toks[zipTok].text
		p.PostalCode = normalizeZIP(p.postalText)
		rest = toks[:zipTok]
	}

	// The state.
	if code, n := matchState(rest, zipTok >= 0); n > 0 {
		p.State = code
		p.stateText = join(rest[len(rest)-n:])
		rest = rest[:len(rest)-n]
	}

	if p.State == "" && zipTok < 0 && !explicitUS {
		return ParsedAddress{Street: whole, Status: AddressUnparsed,
			Reasons: []string{"no US state, ZIP code or recognisable country: kept whole in street_address"}}
	}
	p.Country = DefaultCountry

	// City and street: the city is the last segment before the state; the
	// street is everything before it.
	if len(rest) > 0 {
		lastSeg := rest[len(rest)-1].seg
		i := len(rest)
		for i > 0 && rest[i-1].seg == lastSeg {
			i--
		}
		cityToks, streetToks := rest[i:], rest[:i]
		if len(streetToks) == 0 {
			if k := streetEnd(cityToks); k > 0 {
				streetToks, cityToks = cityToks[:k], cityToks[k:]
				reasons = append(reasons, "no comma between street and city: the city was guessed as "+quote(join(cityToks)))
			} else if looksLikeStreet(cityToks) {
				streetToks, cityToks = cityToks, nil
			}
		}
		p.Street, p.City = join(streetToks), join(cityToks)
	}

	switch {
	case p.Street == "" && p.City == "":
		reasons = append(reasons, "no street and no city")
	case p.Street == "":
		reasons = append(reasons, "no street")
	case p.City == "":
		reasons = append(reasons, "no city")
	}
	if p.City != "" && !plausibleCity(p.City) {
		reasons = append(reasons, "the city "+quote(p.City)+" does not look like a city name")
	}
	if p.State == "" {
		reasons = append(reasons, "no US state")
	}
	if p.PostalCode == "" {
		reasons = append(reasons, "no ZIP code")
	}
	p.Status = AddressParsed
	if len(reasons) > 0 {
		p.Status = AddressPartial
		p.Reasons = reasons
	}
	return p
}

// tokenize splits s into words, numbering the segments separated by commas,
// semicolons and line breaks.
func tokenize(s string) []token {
	var toks []token
	seg := 0
	inSeg := false
	var word strings.Builder
	flush := func() {
		if word.Len() > 0 {
			toks = append(toks, token{text: word.String(), seg: seg})
			word.Reset()
			inSeg = true
		}
	}
	for _, r := range s {
		switch {
		case r == ',' || r == ';' || r == '\n' || r == '\r':
			flush()
			if inSeg {
				seg++
				inSeg = false
			}
		case unicode.IsSpace(r) || unicode.IsControl(r):
			flush()
		default:
			word.WriteRune(r)
		}
	}
	flush()
	return toks
}

// join writes tokens back as text: words of a segment separated by a space,
// segments by a comma and a space.
func join(toks []token) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 {
			if toks[i-1].seg != t.seg {
				b.WriteString(", ")
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteString(t.text)
	}
	return b.String()
}

// norm lower-cases a word and drops its dots ("U.S.A." -> "usa").
func norm(w string) string {
	return strings.ToLower(strings.ReplaceAll(w, ".", ""))
}

// tail returns the normalised text of the last n tokens when they are all in
// one segment.
func tail(toks []token, n int) (string, bool) {
	if n > len(toks) {
		return "", false
	}
	t := toks[len(toks)-n:]
	parts := make([]string, 0, n)
	for _, x := range t {
		if x.seg != t[0].seg {
			return "", false
		}
		if w := norm(x.text); w != "" {
			parts = append(parts, w)
		}
	}
	if len(parts) != n {
		// Tokens that are only dots ("." in "U. S. A .") do not match.
		return "", false
	}
	return strings.Join(parts, " "), true
}

// matchCountry matches a country at the end of the address: the number of
// tokens it takes, its name and whether it is the United States.
func matchCountry(toks []token) (int, string, bool) {
	for n := 4; n >= 1; n-- {
		w, ok := tail(toks, n)
		if !ok {
			continue
		}
		if usCountry[w] {
			return n, DefaultCountry, true
		}
		if name, ok := foreignCountries[w]; ok {
			return n, name, false
		}
	}
	return 0, "", false
}

// stateNames maps lower-case full state names to their codes.
var stateNames = func() map[string]string {
	m := make(map[string]string, len(usStates)+len(stateAliases))
	for code, name := range usStates {
		m[strings.ToLower(strings.ReplaceAll(name, ".", ""))] = code
	}
	for alias, code := range stateAliases {
		m[alias] = code
	}
	return m
}()

// matchState matches a US state at the end of toks: its code and the number
// of tokens it takes. Without a ZIP after it, a state must end its segment
// and not be in the first one (so "12 Elm Ct" is not Connecticut).
func matchState(toks []token, zipFollows bool) (string, int) {
	for n := 4; n >= 1; n-- {
		if n > len(toks) {
			continue
		}
		w, ok := tail(toks, n)
		if !ok {
			continue
		}
		code := ""
		if c, ok := stateNames[w]; ok {
			code = c
		} else if n == 1 && len(w) == 2 {
			if _, ok := usStates[strings.ToUpper(w)]; ok {
				code = strings.ToUpper(w)
			}
		}
		if code == "" {
			continue
		}
		if !zipFollows && toks[len(toks)-n].seg == 0 {
			continue
		}
		return code, n
	}
	return "", 0
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// isZIP reports a ZIP (12345), ZIP+4 (12345-6789) or ZIP+4 without its dash.
func isZIP(s string) bool {
	switch len(s) {
	case 5, 9:
		return isDigits(s)
	case 10:
		return s[5] == '-' && isDigits(s[:5]) && isDigits(s[6:])
	}
	return false
}

func normalizeZIP(s string) string {
	if len(s) == 9 {
		return s[:5] + "-" + s[5:]
	}
	return s
}

// isCanadian recognises "..., ON M5V 2T6" and "..., ON M5V2T6".
func isCanadian(toks []token) bool {
	isPostal := func(s string) bool {
		s = strings.ToUpper(s)
		if len(s) != 6 {
			return false
		}
		for i, r := range s {
			letter := r >= 'A' && r <= 'Z'
			digit := r >= '0' && r <= '9'
			if (i%2 == 0 && !letter) || (i%2 == 1 && !digit) {
				return false
			}
		}
		return true
	}
	n := len(toks)
	switch {
	case n >= 3 && isPostal(toks[n-2].text+toks[n-1].text) && len(toks[n-2].text) == 3:
		return canadianProvinces[strings.ToUpper(norm(toks[n-3].text))]
	case n >= 2 && isPostal(toks[n-1].text):
		return canadianProvinces[strings.ToUpper(norm(toks[n-2].text))]
	}
	return false
}

// streetEnd finds where a street ends in a segment that runs on into the
// city ("123 Main St Portland"): after the last street suffix or unit
// ("Apt 4", "#4"), when at least one word follows. 0 means not found.
func streetEnd(toks []token) int {
	end := 0
	for i := 1; i < len(toks)-1; i++ {
		w := norm(toks[i].text)
		switch {
		case streetSuffixes[w]:
			end = i + 1
		case unitDesignators[w] && i+1 < len(toks)-1:
			end = i + 2
		case strings.HasPrefix(w, "#") && len(w) > 1:
			end = i + 1
		}
	}
	if end >= len(toks) {
		return 0
	}
	return end
}

// looksLikeStreet: a segment that starts with a house number or ends with a
// street suffix is a street, not a city.
func looksLikeStreet(toks []token) bool {
	first, last := toks[0].text, norm(toks[len(toks)-1].text)
	return (first[0] >= '0' && first[0] <= '9') || streetSuffixes[last] || norm(first) == "po"
}

// plausibleCity: letters, with no digits.
func plausibleCity(s string) bool {
	letters := false
	for _, r := range s {
		if unicode.IsDigit(r) {
			return false
		}
		if unicode.IsLetter(r) {
			letters = true
		}
	}
	return letters
}

func quote(s string) string { return "\"" + s + "\"" }
