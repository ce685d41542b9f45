package tmpl

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestRender(t *testing.T) {
	s := Must(fstest.MapFS{"templates/a.tmpl": {Data: []byte("x={{.X}}")}})
	tests := []struct {
		name, tmpl string
		data       any
		want, err  string
	}{
		{"renders", "a.tmpl", map[string]string{"X": "1"}, "x=1", ""},
		{"unknown template", "b.tmpl", nil, "", "template b.tmpl"},
		{"missing key refused", "a.tmpl", map[string]string{}, "", "template a.tmpl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Render(tt.tmpl, tt.data)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
