// Package golden compares rendered files with the copies under a test's testdata/ directory;
// UPDATE_GOLDEN=1 rewrites them.
package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// Check fails t when got differs from testdata/name.
func Check(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (UPDATE_GOLDEN=1 to accept):\n%s", name, got)
	}
}
