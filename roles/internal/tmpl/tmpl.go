// Package tmpl renders a role's embedded templates (templates/*.tmpl next to the role's code:
// go:embed reaches only the role's own directory, so each role embeds and this package parses
// and renders, once for all roles).
package tmpl

import (
	"bytes"
	"fmt"
	"io/fs"
	"text/template"
)

// Set is one role's parsed templates.
type Set struct{ t *template.Template }

// Must parses every templates/*.tmpl of fsys; a broken template is a build mistake, caught by
// the role's tests, so it panics.
func Must(fsys fs.FS) *Set {
	return &Set{t: template.Must(template.New("").Option("missingkey=error").ParseFS(fsys, "templates/*.tmpl"))}
}

// Render executes one template; the error names it.
func (s *Set) Render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := s.t.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return b.Bytes(), nil
}
