package report

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape makes text a process or the helper controls safe to print on a
// terminal: control characters (ESC, CR, BS, C1 controls, ...), invisible
// format characters (bidi overrides) and invalid UTF-8 are shown escaped the
// way Go quotes them (\x1b, \r, \u202e); everything else, spaces and
// non-ASCII letters included, is left as it is.
func Escape(s string) string {
	clean := true
	for i, r := range s {
		if r == utf8.RuneError || needsEscape(r) {
			if r == utf8.RuneError {
				if _, n := utf8.DecodeRuneInString(s[i:]); n > 1 {
					continue // a real U+FFFD
				}
			}
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(s[i])&0xf, 16))
		case needsEscape(r):
			q := strconv.QuoteRune(r) // 'x' with the escape inside
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}
