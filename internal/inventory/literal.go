package inventory

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseValue types an inventory value as Ansible does: Python's ast.literal_eval, falling back
// to the string itself. Results are string, int64, float64, bool, nil, []any or map[string]any.
// Python values JSON cannot hold (complex numbers, sets, bytes, huge ints) stay strings here.
func parseValue(s string) any {
	if strings.ContainsRune(s, 0) {
		return s // Python refuses source with a NUL byte
	}
	lp := &litParser{s: []rune(strings.TrimLeft(s, " \t"))}
	v, err := lp.exprList()
	if err != nil {
		return s
	}
	lp.space()
	if lp.i != len(lp.s) {
		return s
	}
	return v
}

var errNotLiteral = errors.New("not a literal")

type litParser struct {
	s     []rune
	i     int
	depth int // open brackets, bounded like Python's tokenizer
}

// maxNesting is CPython's limit on nested brackets (MAXLEVEL): one more is a SyntaxError, so
// literal_eval fails and Ansible keeps the text. It also bounds this parser's recursion.
const maxNesting = 200

func (p *litParser) peek() rune {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// space skips blanks and a Python comment.
func (p *litParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r', '\f':
			p.i++
		case '#':
			for p.i < len(p.s) && p.s[p.i] != '\n' {
				p.i++
			}
		default:
			return
		}
	}
}

// exprList reads what literal_eval's eval mode reads at the top: one expression, or several
// separated by commas, which is a tuple without parentheses ("1,2", "1,"). Ansible keeps the
// tuple and prints it as a JSON list, so it is a []any here, like a parenthesized tuple.
func (p *litParser) exprList() (any, error) {
	first, err := p.expr()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.peek() != ',' {
		return first, nil
	}
	items := []any{first}
	for p.peek() == ',' {
		p.i++
		p.space()
		if p.i == len(p.s) {
			break // one trailing comma is allowed: "1," is (1,)
		}
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		p.space()
	}
	return items, nil
}

func (p *litParser) expr() (any, error) {
	p.space()
	sign := 1.0
	signed := false
	// literal_eval takes one unary sign on a number ("-5"), not "--5".
	if c := p.peek(); c == '-' || c == '+' {
		if c == '-' {
			sign = -1
		}
		signed = true
		p.i++
		p.space()
	}
	v, err := p.atom()
	if err != nil {
		return nil, err
	}
	if signed {
		switch x := v.(type) {
		case int64:
			return int64(sign) * x, nil
		case float64:
			return sign * x, nil
		default:
			if _, ok := v.(bool); ok {
				return nil, errNotLiteral // literal_eval rejects -True
			}
			return nil, errNotLiteral
		}
	}
	return v, nil
}

func (p *litParser) atom() (any, error) {
	p.space()
	c := p.peek()
	if c == '[' || c == '(' || c == '{' {
		if p.depth++; p.depth > maxNesting {
			return nil, errNotLiteral
		}
		defer func() { p.depth-- }()
	}
	switch {
	case c == '[':
		p.i++
		return p.sequence(']')
	case c == '(':
		p.i++
		return p.paren()
	case c == '{':
		p.i++
		return p.dict()
	case c == '"' || c == '\'':
		return p.strings()
	case (c >= '0' && c <= '9') || c == '.':
		return p.number()
	case c == 'r' || c == 'R' || c == 'u' || c == 'U' || c == 'b' || c == 'B':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '"' || p.s[p.i+1] == '\'') {
			return p.strings()
		}
	}
	word := p.ident()
	switch word {
	case "True":
		return true, nil
	case "False":
		return false, nil
	case "None":
		return nil, nil
	}
	return nil, errNotLiteral
}

func (p *litParser) ident() string {
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			p.i++
			continue
		}
		break
	}
	return string(p.s[start:p.i])
}

func (p *litParser) sequence(closing rune) ([]any, error) {
	out := []any{}
	for {
		p.space()
		if p.peek() == closing {
			p.i++
			return out, nil
		}
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.space()
		switch p.peek() {
		case ',':
			p.i++
		case closing:
			p.i++
			return out, nil
		default:
			return nil, errNotLiteral
		}
	}
}

// paren is a parenthesized value or a tuple (a tuple becomes a JSON list).
func (p *litParser) paren() (any, error) {
	p.space()
	if p.peek() == ')' {
		p.i++
		return []any{}, nil
	}
	first, err := p.expr()
	if err != nil {
		return nil, err
	}
	p.space()
	switch p.peek() {
	case ')':
		p.i++
		return first, nil
	case ',':
		p.i++
		rest, err := p.sequence(')')
		if err != nil {
			return nil, err
		}
		return append([]any{first}, rest...), nil
	}
	return nil, errNotLiteral
}

func (p *litParser) dict() (any, error) {
	out := map[string]any{}
	for {
		p.space()
		if p.peek() == '}' {
			p.i++
			return out, nil
		}
		k, err := p.expr()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.peek() != ':' {
			return nil, errNotLiteral // a set, which JSON cannot hold
		}
		p.i++
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		key, ok := jsonKey(k)
		if !ok {
			return nil, errNotLiteral
		}
		out[key] = v
		p.space()
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return out, nil
		default:
			return nil, errNotLiteral
		}
	}
}

// jsonKey converts a dict key the way Python's json module does.
func jsonKey(k any) (string, bool) {
	switch x := k.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return pyFloat(x), true
	case bool:
		return strconv.FormatBool(x), true
	case nil:
		return "null", true
	}
	return "", false
}

// strings reads one or more adjacent string literals (Python concatenates them).
func (p *litParser) strings() (any, error) {
	var b strings.Builder
	n := 0
	for {
		p.space()
		c := p.peek()
		raw := false
		// Prefixes: r (raw), u (text), b (bytes, which Ansible turns into text).
		if c == 'r' || c == 'R' || c == 'u' || c == 'U' || c == 'b' || c == 'B' {
			if p.i+1 >= len(p.s) || (p.s[p.i+1] != '"' && p.s[p.i+1] != '\'') {
				break
			}
			raw = c == 'r' || c == 'R'
			p.i++
			c = p.peek()
		}
		if c != '"' && c != '\'' {
			break
		}
		s, err := p.str(raw)
		if err != nil {
			return nil, err
		}
		b.WriteString(s)
		n++
	}
	if n == 0 {
		return nil, errNotLiteral
	}
	return b.String(), nil
}

func (p *litParser) str(raw bool) (string, error) {
	q := p.s[p.i]
	triple := p.i+2 < len(p.s) && p.s[p.i+1] == q && p.s[p.i+2] == q
	if triple {
		p.i += 3
	} else {
		p.i++
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == q && (!triple || (p.i+2 < len(p.s) && p.s[p.i+1] == q && p.s[p.i+2] == q)) {
			if triple {
				p.i += 3
			} else {
				p.i++
			}
			return b.String(), nil
		}
		if c == '\n' && !triple {
			return "", errNotLiteral
		}
		if c == '\\' && p.i+1 < len(p.s) {
			if raw {
				b.WriteRune(c)
				b.WriteRune(p.s[p.i+1])
				p.i += 2
				continue
			}
			if err := p.escape(&b); err != nil {
				return "", err
			}
			continue
		}
		b.WriteRune(c)
		p.i++
	}
	return "", errNotLiteral
}

func (p *litParser) escape(b *strings.Builder) error {
	c := p.s[p.i+1]
	p.i += 2
	simple := map[rune]string{'\\': `\`, '\'': `'`, '"': `"`, 'a': "\a", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t", 'v': "\v", '\n': ""}
	if s, ok := simple[c]; ok {
		b.WriteString(s)
		return nil
	}
	hexLen := map[rune]int{'x': 2, 'u': 4, 'U': 8}[c]
	if hexLen > 0 {
		if p.i+hexLen > len(p.s) {
			return errNotLiteral
		}
		n, err := strconv.ParseUint(string(p.s[p.i:p.i+hexLen]), 16, 32)
		if err != nil || !utf8.ValidRune(rune(n)) {
			return errNotLiteral
		}
		b.WriteRune(rune(n))
		p.i += hexLen
		return nil
	}
	if c >= '0' && c <= '7' {
		n := int(c - '0')
		for k := 0; k < 2 && p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '7'; k++ {
			n = n*8 + int(p.s[p.i]-'0')
			p.i++
		}
		b.WriteRune(rune(n))
		return nil
	}
	// Python keeps unknown escapes as they are.
	b.WriteRune('\\')
	b.WriteRune(c)
	return nil
}

func (p *litParser) number() (any, error) {
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' {
			p.i++
			continue
		}
		// exponent sign: 1e-5
		if (c == '+' || c == '-') && p.i > start && (p.s[p.i-1] == 'e' || p.s[p.i-1] == 'E') && !isHexPrefix(p.s[start:p.i]) {
			p.i++
			continue
		}
		break
	}
	lit := string(p.s[start:p.i])
	if strings.HasSuffix(lit, "_") || strings.Contains(lit, "__") {
		return nil, errNotLiteral
	}
	clean := strings.ReplaceAll(lit, "_", "")
	lower := strings.ToLower(clean)
	switch {
	case strings.HasPrefix(lower, "0x"), strings.HasPrefix(lower, "0o"), strings.HasPrefix(lower, "0b"):
		base := map[byte]int{'x': 16, 'o': 8, 'b': 2}[lower[1]]
		n, err := strconv.ParseInt(lower[2:], base, 64)
		if err != nil || strings.HasPrefix(lit[2:], "__") {
			return nil, errNotLiteral
		}
		return n, nil
	case strings.ContainsAny(lower, ".e"):
		if strings.ContainsAny(lower, "jx") || strings.HasPrefix(lower, "e") {
			return nil, errNotLiteral
		}
		f, err := strconv.ParseFloat(clean, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, errNotLiteral
		}
		return f, nil
	default:
		// Python 3 rejects leading zeros in decimal integers ("01"), except all zeros.
		if len(clean) > 1 && clean[0] == '0' && strings.Trim(clean, "0") != "" {
			return nil, errNotLiteral
		}
		n, err := strconv.ParseInt(clean, 10, 64)
		if err != nil {
			return nil, errNotLiteral
		}
		return n, nil
	}
}

func isHexPrefix(r []rune) bool {
	return len(r) >= 2 && r[0] == '0' && (r[1] == 'x' || r[1] == 'X')
}

// pyFloat formats a float the way Python's repr does (1000.0, 1e+20, 1.5e-05).
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
