package syncrep

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Names is a synchronous_standby_names value: Num of Members, the first
// ones listed (FIRST, also the older forms "a, b" and "N (a, b)") or any
// (ANY). A member "*" stands for every standby. The zero Names is "": no
// synchronous replication.
type Names struct {
	Method  string // "FIRST" or "ANY"
	Num     int
	Members []string
}

// ParseNames reads a synchronous_standby_names value as PostgreSQL does.
func ParseNames(s string) (Names, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return Names{}, nil
	}
	n := Names{Method: "FIRST", Num: 1}
	word, rest := leadingWord(t)
	switch strings.ToUpper(word) {
	case "FIRST", "ANY":
		if r := strings.TrimSpace(rest); r != "" && unicode.IsDigit(rune(r[0])) {
			n.Method, t = strings.ToUpper(word), r
		}
	}
	if i := strings.IndexByte(t, '('); i >= 0 {
		num, err := strconv.Atoi(strings.TrimSpace(t[:i]))
		if err != nil || num < 1 {
			return Names{}, fmt.Errorf("synchronous_standby_names %q: %q is not a number of standbys", s, strings.TrimSpace(t[:i]))
		}
		end := strings.LastIndexByte(t, ')')
		if end < i || strings.TrimSpace(t[end+1:]) != "" {
			return Names{}, fmt.Errorf("synchronous_standby_names %q: unbalanced parentheses", s)
		}
		n.Num, t = num, t[i+1:end]
	} else if n.Method == "ANY" {
		return Names{}, fmt.Errorf("synchronous_standby_names %q: ANY needs a list in parentheses", s)
	}
	members, err := splitNames(t)
	if err != nil {
		return Names{}, fmt.Errorf("synchronous_standby_names %q: %w", s, err)
	}
	n.Members = members
	return n, nil
}

// String writes n as synchronous_standby_names.
func (n Names) String() string {
	if n.Num == 0 || len(n.Members) == 0 {
		return ""
	}
	quoted := make([]string, len(n.Members))
	for i, m := range n.Members {
		if m == "*" {
			quoted[i] = m
			continue
		}
		quoted[i] = `"` + strings.ReplaceAll(m, `"`, `""`) + `"`
	}
	return n.Method + " " + strconv.Itoa(n.Num) + " (" + strings.Join(quoted, ", ") + ")"
}

func leadingWord(s string) (string, string) {
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) })
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// blanks are the whitespace PostgreSQL's synchronous_standby_names scanner
// skips between tokens. Skipping only spaces read `ANY 1 (\t"a")` as a
// standby named `"a"`, quotes included, which no standby matches.
const blanks = " \t\n\r\f\v"

func isBlank(c byte) bool { return strings.IndexByte(blanks, c) >= 0 }

// splitNames splits a comma-separated list of standby names, each a bare
// word or a double-quoted identifier ("" inside for a quote).
func splitNames(s string) ([]string, error) {
	var out []string
	for i := 0; ; {
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		var name string
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("unterminated quoted name")
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			name = b.String()
		} else {
			j := i
			for j < len(s) && s[j] != ',' {
				j++
			}
			name = strings.ToLower(strings.TrimSpace(s[i:j]))
			if strings.ContainsAny(name, blanks+"()") {
				return nil, fmt.Errorf("%q is not a standby name (FIRST and ANY need a number and a list in parentheses)", name)
			}
			i = j
		}
		if name == "" {
			return nil, fmt.Errorf("an empty standby name")
		}
		out = append(out, name)
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		if s[i] != ',' {
			return nil, fmt.Errorf("unexpected %q after %q", s[i:], name)
		}
		i++
	}
}

// Matches says whether a standby with application_name app is one of n's.
func (n Names) Matches(app string) bool {
	for _, m := range n.Members {
		if m == "*" || strings.EqualFold(m, app) {
			return true
		}
	}
	return false
}

// Adjust is EFM's check of a synchronous_standby_names the user manages
// (synchronous.mode=off): available is how many of the listed standbys
// stream now. With reconfigure.num.sync, too few lower Num to what
// streams (never below 1), and reconfigure.num.sync.max (numSyncMax, 0:
// none) raises it back as standbys return; with no listed standby
// streaming, reconfigure.sync.primary clears the setting (the primary
// leaves synchronous mode). It returns the value to set (or "" with
// changed false), and whether too few remain for what is left.
func Adjust(n Names, available int, numSync bool, numSyncMax int, syncPrimary bool) (next Names, changed, short bool) {
	if n.Num == 0 {
		return n, false, false
	}
	next = n
	next.Members = append([]string(nil), n.Members...)
	if numSync && available >= 1 && available < n.Num {
		next.Num = available
	}
	if numSync && numSyncMax > next.Num && available > next.Num {
		next.Num = min(numSyncMax, available)
	}
	if available == 0 && syncPrimary {
		return Names{}, true, false
	}
	return next, next.Num != n.Num, available < next.Num
}
