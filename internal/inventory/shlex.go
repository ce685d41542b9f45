package inventory

import "errors"

// shlexSplit splits a host line like Python's shlex.split(line, comments=True) in POSIX mode,
// which Ansible uses: whitespace separates tokens, quotes group, backslash escapes outside
// single quotes, and '#' outside quotes starts a comment (even inside a word).
func shlexSplit(s string) ([]string, error) {
	var tokens []string
	var tok []rune
	inToken, quoted := false, false
	emit := func() {
		if inToken || quoted {
			tokens = append(tokens, string(tok))
		}
		tok, inToken, quoted = tok[:0], false, false
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			emit()
		case c == '#':
			emit()
			return tokens, nil
		case c == '\\':
			if i+1 >= len(rs) {
				return nil, errors.New("no escaped character after '\\'")
			}
			i++
			tok = append(tok, rs[i])
			inToken = true
		case c == '\'':
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j >= len(rs) {
				return nil, errors.New("no closing quotation: close the ' quote")
			}
			tok = append(tok, rs[i+1:j]...)
			i, inToken, quoted = j, true, true
		case c == '"':
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				// Inside double quotes a backslash escapes only '"' and '\'.
				if rs[j] == '\\' && j+1 < len(rs) && (rs[j+1] == '"' || rs[j+1] == '\\') {
					j++
				} else if rs[j] == '\\' && j+1 >= len(rs) {
					return nil, errors.New("no closing quotation: close the \" quote")
				}
				tok = append(tok, rs[j])
			}
			if j >= len(rs) {
				return nil, errors.New("no closing quotation: close the \" quote")
			}
			i, inToken, quoted = j, true, true
		default:
			tok = append(tok, c)
			inToken = true
		}
	}
	emit()
	return tokens, nil
}
