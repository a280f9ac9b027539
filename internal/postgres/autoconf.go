package postgres

import (
	"slices"
	"strings"
)

// AutoConfFile is the file ALTER SYSTEM writes, read after postgresql.conf.
const AutoConfFile = "postgresql.auto.conf"

// ConfValue returns the value of setting name in a postgresql.conf-format
// text (postgresql.auto.conf included), as the server reads it: the last
// line setting it wins, names are case-insensitive, quoted values are
// unquoted. Include directives are not followed.
func ConfValue(text, name string) (value string, ok bool) {
	for _, line := range strings.Split(text, "\n") {
		if n, v, isSetting := parseConfLine(line); isSetting && strings.EqualFold(n, name) {
			value, ok = v, true
		}
	}
	return value, ok
}

// RewriteConf sets settings in a postgresql.conf-format text as ALTER
// SYSTEM would: the first line setting each name is replaced by
// "name = 'value'", later lines setting it are removed (they would win),
// names not set yet are appended in sorted order. Comments and every other
// line are kept as they are.
func RewriteConf(text string, settings map[string]string) string {
	done := map[string]bool{}
	var out []string
	lines := strings.Split(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1] // the text's final newline
	}
	for _, line := range lines {
		n, _, isSetting := parseConfLine(line)
		key, ok := lookupFold(settings, n)
		if !isSetting || !ok {
			out = append(out, line)
			continue
		}
		if done[key] {
			continue
		}
		done[key] = true
		out = append(out, confLine(key, settings[key]))
	}
	var missing []string
	for k := range settings {
		if !done[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	for _, k := range missing {
		out = append(out, confLine(k, settings[k]))
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

// lookupFold finds name among the keys of m, ignoring case.
func lookupFold(m map[string]string, name string) (string, bool) {
	if name == "" {
		return "", false
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// confLine is a setting as ALTER SYSTEM writes it: single quotes and
// backslashes doubled inside single quotes.
func confLine(name, value string) string {
	return name + " = " + confQuote(value)
}

// confQuote also writes a newline as \n, which the server reads back as a
// newline: written as is, it ended the line inside the quotes, and the
// server refused the whole file (a primary_conninfo naming a host with a
// newline, from etcd, kept the standby from starting).
func confQuote(v string) string {
	r := strings.NewReplacer(`'`, `''`, `\`, `\\`, "\n", `\n`)
	return "'" + r.Replace(v) + "'"
}

// parseConfLine reads one line of a configuration file: "name = value" or
// "name value", optionally followed by a comment. Blank lines, comments and
// lines it cannot read are not settings.
func parseConfLine(line string) (name, value string, ok bool) {
	i := skipConfSpace(line, 0)
	start := i
	if i >= len(line) || !isConfLetter(line[i]) {
		return "", "", false
	}
	for i < len(line) && (isConfLetter(line[i]) || isDigit(line[i]) || line[i] == '.') {
		i++
	}
	name = line[start:i]
	i = skipConfSpace(line, i)
	if i < len(line) && line[i] == '=' {
		i = skipConfSpace(line, i+1)
	}
	if i >= len(line) || line[i] == '#' {
		return "", "", false
	}
	if line[i] != '\'' {
		end := i
		for end < len(line) && !isSpace(line[end]) && line[end] != '#' {
			end++
		}
		return name, line[i:end], true
	}
	v, ok := unquoteConf(line[i:])
	return name, v, ok
}

// unquoteConf reads a single-quoted configuration value at the start of s,
// as the server's GUC_scanstr does: ” is a quote, a backslash escapes the
// next character (\b \f \n \r \t and octal \ooo mean what they do in C).
func unquoteConf(s string) (string, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == '\'':
			return b.String(), true
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0', '1', '2', '3', '4', '5', '6', '7':
				o := int(e - '0')
				for k := 0; k < 2 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; k++ {
					i++
					o = o*8 + int(s[i]-'0')
				}
				b.WriteByte(byte(o))
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", false // unterminated
}

func skipConfSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// isConfLetter is what may start a setting's name: a letter, an underscore
// or any byte of a multi-byte character.
func isConfLetter(c byte) bool {
	return c == '_' || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
