package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Entry is one key/value pair of a properties file. Line is the line where
// the entry starts (the first of its continuation lines), 1-based.
type Entry struct {
	Key, Value string
	Line       int
}

// ParseProperties implements the syntax of java.util.Properties.load:
// '#' or '!' comment lines; key and value separated by '=', ':' or
// whitespace; leading whitespace skipped; a line ending in an odd number of
// backslashes continues on the next (whose leading whitespace is dropped);
// escapes \t \n \r \f \\ \uXXXX, and \<any> for that character, in keys and
// values. The input is read as UTF-8.
//
// A key set twice keeps its last value: only that entry is returned, and a
// Warning names both lines. Entries come back in file order. A malformed
// \uXXXX escape is an error for that entry only; the others are returned.
// file is used in messages only.
func ParseProperties(data []byte, file string) ([]Entry, []Warning, error) {
	var entries []Entry
	var errs []error
	lines := naturalLines(data)
	for i := 0; i < len(lines); {
		text := trimBlank(lines[i])
		if text == "" || text[0] == '#' || text[0] == '!' {
			i++
			continue
		}
		start := i + 1
		var b strings.Builder
		for {
			cont := continues(text)
			if cont {
				text = text[:len(text)-1]
			}
			b.WriteString(text)
			i++
			if !cont || i >= len(lines) {
				break
			}
			text = trimBlank(lines[i])
		}
		e, err := parseLogicalLine(b.String(), start)
		if err != nil {
			errs = append(errs, &Problem{File: file, Line: start, Key: e.Key, Message: err.Error()})
			continue
		}
		entries = append(entries, e)
	}
	entries, warns := dedupe(entries, file)
	return entries, warns, errors.Join(errs...)
}

// naturalLines splits data at "\n", "\r" or "\r\n", as Java does.
func naturalLines(data []byte) []string {
	s := string(data)
	var lines []string
	for len(s) > 0 {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i])
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
	return lines
}

// isBlank is Java's whitespace for properties files: space, tab, form feed.
func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\f' }

func trimBlank(s string) string {
	i := 0
	for i < len(s) && isBlank(s[i]) {
		i++
	}
	return s[i:]
}

// continues reports whether a natural line ends in an odd number of
// backslashes, i.e. its last backslash escapes the line break.
func continues(s string) bool {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// parseLogicalLine splits a logical line (continuations joined) into its
// unescaped key and value. On error the returned Entry still carries the
// key when it could be read, for the message.
func parseLogicalLine(s string, line int) (Entry, error) {
	keyEnd, valStart := splitKeyValue(s)
	key, kerr := unescape(s[:keyEnd])
	if kerr != nil {
		return Entry{Line: line}, fmt.Errorf("in the key: %w", kerr)
	}
	val, verr := unescape(s[valStart:])
	if verr != nil {
		return Entry{Key: key, Line: line}, verr
	}
	return Entry{Key: key, Value: val, Line: line}, nil
}

// splitKeyValue finds where the raw key ends and the raw value starts. The
// key ends at the first unescaped '=', ':' or blank; then blanks, at most
// one '=' or ':', and blanks again are skipped.
func splitKeyValue(s string) (keyEnd, valStart int) {
	keyEnd = len(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			i++ // the next character is escaped, whatever it is
			continue
		}
		if c == '=' || c == ':' || isBlank(c) {
			keyEnd = i
			break
		}
	}
	i := keyEnd
	sep := false
	for i < len(s) {
		c := s[i]
		switch {
		case isBlank(c):
		case !sep && (c == '=' || c == ':'):
			sep = true
		default:
			return keyEnd, i
		}
		i++
	}
	return keyEnd, i
}

// unescape applies Java's escapes: \t \n \r \f, \uXXXX (UTF-16 code units,
// surrogate pairs combined), and \c = c for anything else.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			break // a lone trailing backslash (continuation at end of file): dropped, as Java does
		}
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			r, n, err := unicodeEscape(s[i-1:])
			if err != nil {
				return "", err
			}
			b.WriteRune(r)
			i += n - 2 // n counts the backslash and 'u' the loop has consumed
		default:
			// \<any>: that character; copy a whole UTF-8 sequence, not one byte.
			_, size := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+size])
			i += size - 1
		}
	}
	return b.String(), nil
}

// unicodeEscape decodes "\uXXXX" at the start of s, plus a following
// "\uXXXX" low surrogate when the first is a high surrogate. It returns
// the rune and how many bytes it used. A lone surrogate becomes U+FFFD.
func unicodeEscape(s string) (rune, int, error) {
	hi, ok := hex4(s)
	if !ok {
		bad := s[:min(len(s), 6)]
		return 0, 0, fmt.Errorf("malformed Unicode escape %q: \\u needs exactly four hex digits, e.g. \\u00e9; write \\\\u for a literal backslash and u", bad)
	}
	if utf16.IsSurrogate(hi) && hi < 0xdc00 {
		if lo, ok := hex4(s[6:]); ok {
			if r := utf16.DecodeRune(hi, lo); r != utf8.RuneError {
				return r, 12, nil
			}
		}
	}
	if utf16.IsSurrogate(hi) {
		return utf8.RuneError, 6, nil
	}
	return hi, 6, nil
}

// hex4 reads "\uXXXX" at the start of s.
func hex4(s string) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	for i := 2; i < 6; i++ {
		if !isHex(s[i]) {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s[2:6], 16, 32)
	return rune(v), err == nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// dedupe keeps the last entry of each key (Java's "last wins"), in file
// order, and warns about each earlier one.
func dedupe(entries []Entry, file string) ([]Entry, []Warning) {
	last := make(map[string]int, len(entries))
	for i, e := range entries {
		last[e.Key] = i
	}
	var warns []Warning
	out := entries[:0:0]
	for i, e := range entries {
		if j := last[e.Key]; j != i {
			later := entries[j].Line
			warns = append(warns, Warning{File: file, Line: later, Key: e.Key, Message: fmt.Sprintf(
				"set on line %d and again on line %d; the value on line %d wins; remove one of them", e.Line, later, later)})
			continue
		}
		out = append(out, e)
	}
	return out, warns
}
