package hook

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrSyntax is wrapped by Split's errors: a command line that cannot be
// split into words (an unclosed quote, a trailing backslash).
var ErrSyntax = errors.New("command line syntax")

// Split splits a command line into argv with a small, shell-like set of
// rules, without invoking a shell:
//
//   - blanks (space, tab, newline) separate words;
//   - 'single quotes' keep everything up to the next single quote as is;
//   - "double quotes" keep everything as is except \" and \\, which stand
//     for " and \;
//   - outside quotes, a backslash makes the next character literal;
//   - empty quotes ("" or a pair of single quotes) make an empty word.
//
// Nothing else is special: no variables, globs, pipes, redirections or
// ';'. Users who need a shell write /bin/sh -c '...'.
func Split(cmdline string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool // cur holds a word, possibly empty ('')
	)
	for i := 0; i < len(cmdline); i++ {
		c := cmdline[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 == len(cmdline) {
				return nil, fmt.Errorf("%w: trailing backslash at the end of %q; remove it or write \\\\ for a backslash", ErrSyntax, cmdline)
			}
			i++
			cur.WriteByte(cmdline[i])
			inWord = true
		case c == '\'':
			end := strings.IndexByte(cmdline[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("%w: unclosed single quote at position %d of %q; close it with '", ErrSyntax, i+1, cmdline)
			}
			cur.WriteString(cmdline[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(cmdline) && cmdline[j] != '"'; j++ {
				if cmdline[j] == '\\' && j+1 < len(cmdline) && (cmdline[j+1] == '"' || cmdline[j+1] == '\\') {
					j++
				}
				cur.WriteByte(cmdline[j])
			}
			if j == len(cmdline) {
				return nil, fmt.Errorf("%w: unclosed double quote at position %d of %q; close it with \"", ErrSyntax, i+1, cmdline)
			}
			i = j
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Placeholders are the values of EFM's placeholders in a script's command
// line. An unset value expands to an empty string.
//
// %p, %f and %h are node addresses, and come from the cluster state in
// etcd (the primary record): before a script runs, each must be empty or
// an IP address without a zone, and %t empty, p or s; otherwise the script
// is not run. A corrupt or forged record then cannot hand a script (often
// run through sudo or ssh) an argument it does not expect, such as an
// option or a path.
type Placeholders struct {
	NewPrimary    string // %p: address of the new primary
	FailedPrimary string // %f: address of the failed primary ("" when there is none)
	Node          string // %h: the node concerned (load balancer scripts)
	Type          string // %t: p (primary) or s (standby)
	Owner         string // %u: db.service.owner (from the local configuration)
}

// check says why a value may not be passed to a script, or returns nil.
func (v Placeholders) check() error {
	for _, p := range []struct{ name, value string }{
		{"%p", v.NewPrimary}, {"%f", v.FailedPrimary}, {"%h", v.Node},
	} {
		if p.value != "" && !nodeAddress(p.value) {
			return fmt.Errorf("placeholder %s is %q, not a node address; the cluster state in etcd may be corrupt", p.name, p.value)
		}
	}
	if v.Type != "" && v.Type != "p" && v.Type != "s" {
		return fmt.Errorf("placeholder %%t is %q, not p or s", v.Type)
	}
	return nil
}

// nodeAddress reports whether s is an IP address as nodes are named: IPv4
// or IPv6, without a zone (bind.address refuses zones).
func nodeAddress(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}

// Expand replaces %p, %f, %h, %t and %u in word with their values and %%
// with %. Any other %x, and a % at the end, is left as is.
func (v Placeholders) Expand(word string) string {
	if !strings.Contains(word, "%") {
		return word
	}
	var b strings.Builder
	for i := 0; i < len(word); i++ {
		c := word[i]
		if c != '%' || i+1 == len(word) {
			b.WriteByte(c)
			continue
		}
		switch word[i+1] {
		case 'p':
			b.WriteString(v.NewPrimary)
		case 'f':
			b.WriteString(v.FailedPrimary)
		case 'h':
			b.WriteString(v.Node)
		case 't':
			b.WriteString(v.Type)
		case 'u':
			b.WriteString(v.Owner)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			continue // the next character is written by the next iteration
		}
		i++
	}
	return b.String()
}

// argv splits cmdline and then expands the placeholders word by word, so a
// value with blanks or quotes in it stays one argument and is never parsed.
func argv(cmdline string, vars Placeholders) ([]string, error) {
	words, err := Split(cmdline)
	if err != nil {
		return nil, err
	}
	for i, w := range words {
		words[i] = vars.Expand(w)
	}
	return words, nil
}
