package auth

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// commonPasswordsGz is Django's list of 20,000 common passwords (lower-cased
// and deduplicated, created by Royce Williams), copied unchanged from
// django/contrib/auth/common-passwords.txt.gz of Django 3.2.25 as shipped in
// Debian's python3-django package (3:3.2.25-0+deb12u7). Django is
// Copyright (c) Django Software Foundation and individual contributors, under
// the BSD 3-Clause licence.
//
//go:embed common-passwords.txt.gz
var commonPasswordsGz []byte

// Password rules, Django's defaults.
const (
	MinPasswordLength = 8
	// MaxPasswordBytes bounds what is hashed; Argon2id has no 72-byte limit,
	// this only stops absurd inputs.
	MaxPasswordBytes = 4096
	// maxSimilarity is UserAttributeSimilarityValidator's default.
	maxSimilarity = 0.7
)

// PasswordRules checks passwords against Django's default validators. Build
// it once with NewPasswordRules (the common-password list is decoded then)
// and share it: it is safe for concurrent use.
type PasswordRules struct {
	common map[string]struct{}
}

// NewPasswordRules decodes the embedded common-password list.
func NewPasswordRules() (*PasswordRules, error) {
	zr, err := gzip.NewReader(bytes.NewReader(commonPasswordsGz))
	if err != nil {
		return nil, fmt.Errorf("auth: common passwords: %w", err)
	}
	defer zr.Close()
	common := make(map[string]struct{}, 20000)
	s := bufio.NewScanner(zr)
	for s.Scan() {
		if p := strings.TrimSpace(s.Text()); p != "" {
			common[p] = struct{}{}
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("auth: common passwords: %w", err)
	}
	return &PasswordRules{common: common}, nil
}

// UserAttributes are the user's data a password must not resemble, in the
// order Django checks them (first_name, last_name, email).
type UserAttributes struct {
	FirstName string
	LastName  string
	Email     string
}

// Validate returns Django's messages for every rule the password breaks, in
// Django's default validator order (similarity, minimum length, common,
// numeric); nil when it is acceptable. A password over MaxPasswordBytes gets
// only that message.
func (r *PasswordRules) Validate(password string, u UserAttributes) []string {
	if len(password) > MaxPasswordBytes {
		return []string{fmt.Sprintf("Ensure this field has no more than %d characters.", MaxPasswordBytes)}
	}
	var msgs []string
	if m := similarityMessage(password, u); m != "" {
		msgs = append(msgs, m)
	}
	if utf8.RuneCountInString(password) < MinPasswordLength {
		msgs = append(msgs, fmt.Sprintf("This password is too short. It must contain at least %d characters.", MinPasswordLength))
	}
	if _, ok := r.common[strings.TrimSpace(strings.ToLower(password))]; ok {
		msgs = append(msgs, "This password is too common.")
	}
	if isDigits(password) {
		msgs = append(msgs, "This password is entirely numeric.")
	}
	return msgs
}

// isDigits is Python's str.isdigit: non-empty and every character a digit.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// similarityMessage is Django's UserAttributeSimilarityValidator: the
// lower-cased password is compared with each attribute (lower-cased) and with
// its parts split on non-word characters; a quick_ratio of at least 0.7 with
// any of them rejects the password, naming the first attribute that matched.
func similarityMessage(password string, u UserAttributes) string {
	pw := []rune(strings.ToLower(password))
	attrs := []struct{ value, name string }{
		{u.FirstName, "first name"},
		{u.LastName, "last name"},
		{u.Email, "email"},
	}
	for _, a := range attrs {
		if a.value == "" {
			continue
		}
		lower := strings.ToLower(a.value)
		parts := append(splitNonWord(lower), lower)
		for _, part := range parts {
			p := []rune(part)
			if exceedsMaximumLengthRatio(len(pw), maxSimilarity, len(p)) {
				continue
			}
			if QuickRatio(pw, p) >= maxSimilarity {
				return "The password is too similar to the " + a.name + "."
			}
		}
	}
	return ""
}

// exceedsMaximumLengthRatio is Django's shortcut: a value far shorter than
// the password cannot reach the similarity bound.
func exceedsMaximumLengthRatio(pwdLen int, max float64, valueLen int) bool {
	bound := max / 2 * float64(pwdLen)
	return pwdLen >= 10*valueLen && float64(valueLen) < bound
}

// isWord is Python's \w for str patterns: alphanumeric (letters and numerics
// of any script) or the underscore.
func isWord(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}

// splitNonWord is Python's re.split(r'\W+', s): runs of non-word characters
// separate the parts, and a leading or trailing run yields an empty part.
func splitNonWord(s string) []string {
	var parts []string
	start := 0
	inSep := false
	for i, r := range s {
		if isWord(r) {
			if inSep {
				start = i
				inSep = false
			}
			continue
		}
		if !inSep {
			parts = append(parts, s[start:i])
			inSep = true
		}
	}
	if inSep {
		parts = append(parts, "")
	} else {
		parts = append(parts, s[start:])
	}
	return parts
}

// QuickRatio is difflib.SequenceMatcher(a=a, b=b).quick_ratio(): twice the
// size of the multiset intersection of the two sequences' characters over
// their total length (1.0 when both are empty).
func QuickRatio(a, b []rune) float64 {
	total := len(a) + len(b)
	if total == 0 {
		return 1
	}
	avail := make(map[rune]int, len(b))
	for _, r := range b {
		avail[r]++
	}
	matches := 0
	for _, r := range a {
		if avail[r] > 0 {
			matches++
		}
		avail[r]--
	}
	return 2 * float64(matches) / float64(total)
}
