// Package version parses and compares the vMAJOR.MINOR.PATCH versions of components.
package version

import (
	"fmt"
	"strconv"
	"strings"
)

// V is a parsed version.
type V [3]int

// Parse reads vMAJOR.MINOR.PATCH (a -suffix on the patch is ignored).
func Parse(s string) (V, error) {
	var out V
	parts := strings.SplitN(strings.TrimPrefix(s, "v"), ".", 3)
	if len(parts) != 3 {
		return out, fmt.Errorf("version %q: want vMAJOR.MINOR.PATCH", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(strings.SplitN(strings.SplitN(p, "-", 2)[0], "+", 2)[0])
		if err != nil {
			return out, fmt.Errorf("version %q: want vMAJOR.MINOR.PATCH", s)
		}
		out[i] = n
	}
	return out, nil
}

// Compare returns -1, 0 or 1.
func Compare(a, b V) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// CheckUpgrade refuses a downgrade and a jump of more than one minor version.
func CheckUpgrade(component, from, to string) error {
	f, err := Parse(from)
	if err != nil {
		return err
	}
	t, err := Parse(to)
	if err != nil {
		return err
	}
	switch {
	case Compare(t, f) < 0:
		return fmt.Errorf("refusing to downgrade %s from %s to %s", component, from, to)
	case t[0] != f[0] || t[1] > f[1]+1:
		return fmt.Errorf("refusing to upgrade %s from %s to %s: upgrade one minor version at a time (next: v%d.%d.x)", component, from, to, f[0], f[1]+1)
	}
	return nil
}
