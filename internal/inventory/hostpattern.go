package inventory

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Address patterns of ansible-core's parse_address, which splits host:port before ranges expand.
const alnumRange = `\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]`

var (
	bracketedHostPortRe = regexp.MustCompile(`^\[(.+)\]:([0-9]+)$`)
	hostPortRe          = regexp.MustCompile(`^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$`)
	ipv4ComponentRe     = `(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|\[[0-9]+:[0-9]+(?::[0-9]+)?\])`
	ipv4Re              = regexp.MustCompile(`^(?:` + ipv4ComponentRe + `\.){3}` + ipv4ComponentRe + `$`)
	labelRe             = regexp.MustCompile(`(?i)^(?:[\p{L}\p{N}_]|` + alnumRange + `)(?:[\p{L}\p{N}_-]|` + alnumRange + `)*$`)
	ipv6RangeRe         = regexp.MustCompile(`(?i)\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\]`)
)

// expandHostPattern turns a host pattern into host names and a port (-1: none), as Ansible's
// ini plugin does: an address it cannot parse is taken whole, without a port.
func expandHostPattern(pattern string) ([]string, int, error) {
	host, port := pattern, -1
	if h, p, ok := parseAddress(pattern); ok {
		host, port = h, p
	}
	if !strings.Contains(host, "[") {
		return []string{host}, port, nil
	}
	names, err := expandRange(host)
	return names, port, err
}

func parseAddress(addr string) (string, int, bool) {
	port := -1
	for _, re := range []*regexp.Regexp{bracketedHostPortRe, hostPortRe} {
		if m := re.FindStringSubmatch(addr); m != nil {
			p, err := strconv.Atoi(m[2])
			if err != nil {
				return "", 0, false
			}
			addr, port = m[1], p
		}
	}
	if ipv4Re.MatchString(addr) || isIPv6(addr) || isHostname(addr) {
		return addr, port, true
	}
	return "", 0, false
}

func isIPv6(addr string) bool {
	if !strings.Contains(addr, ":") {
		return false
	}
	plain := ipv6RangeRe.ReplaceAllString(addr, "0")
	ip := net.ParseIP(plain)
	return ip != nil && strings.Contains(plain, ":")
}

func isHostname(addr string) bool {
	for _, label := range strings.Split(addr, ".") {
		if !labelRe.MatchString(label) || strings.HasSuffix(label, "-") || strings.HasSuffix(label, "_") {
			return false
		}
	}
	return true
}

// maxRangeHosts bounds what one host pattern may expand to, so a typo such as
// node[1:99999999] is an error rather than an installer that runs out of memory.
const maxRangeHosts = 10000

const asciiLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// expandRange expands the first [begin:end(:step)] of a name, then the rest recursively.
func expandRange(name string) ([]string, error) {
	open := strings.Index(name, "[")
	closeIdx := strings.Index(name, "]")
	if closeIdx < open {
		return nil, fmt.Errorf("range has no closing ']'")
	}
	head, spec, tail := name[:open], name[open+1:closeIdx], name[closeIdx+1:]
	bounds := strings.Split(spec, ":")
	if len(bounds) != 2 && len(bounds) != 3 {
		return nil, fmt.Errorf("range [%s] must be [begin:end] or [begin:end:step]", spec)
	}
	beg, end, step := bounds[0], bounds[1], 1
	if beg == "" {
		beg = "0"
	}
	if end == "" {
		return nil, fmt.Errorf("range [%s] has no end value", spec)
	}
	if len(bounds) == 3 {
		s, err := strconv.Atoi(bounds[2])
		if err != nil || s <= 0 {
			return nil, fmt.Errorf("range [%s]: step must be a positive whole number", spec)
		}
		step = s
	}
	width := 0
	if beg[0] == '0' && len(beg) > 1 {
		if len(beg) != len(end) {
			return nil, fmt.Errorf("range [%s]: zero-padded begin and end must have the same width", spec)
		}
		width = len(beg)
	}
	var seq []string
	ib, ie := strings.Index(asciiLetters, beg), strings.Index(asciiLetters, end)
	if len(beg) == 1 && len(end) == 1 && ib >= 0 && ie >= 0 {
		if ib > ie {
			return nil, fmt.Errorf("range [%s]: begin must not be after end", spec)
		}
		for i := ib; i <= ie; i += step {
			seq = append(seq, asciiLetters[i:i+1])
		}
	} else {
		b, err1 := strconv.Atoi(beg)
		e, err2 := strconv.Atoi(end)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("range [%s]: use numbers ([1:3], [01:10]) or single letters ([a:c])", spec)
		}
		if b > e {
			return nil, fmt.Errorf("range [%s]: begin must not be after end", spec)
		}
		if (e-b)/step+1 > maxRangeHosts {
			return nil, fmt.Errorf("range [%s] makes more than %d hosts", spec, maxRangeHosts)
		}
		for i := b; i <= e; i += step {
			s := strconv.Itoa(i)
			if len(s) < width {
				s = strings.Repeat("0", width-len(s)) + s
			}
			seq = append(seq, s)
		}
	}
	var out []string
	for _, s := range seq {
		n := head + s + tail
		if strings.Contains(n, "[") {
			more, err := expandRange(n)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
			if len(out) > maxRangeHosts {
				return nil, fmt.Errorf("host pattern makes more than %d hosts", maxRangeHosts)
			}
		} else {
			out = append(out, n)
		}
	}
	return out, nil
}
