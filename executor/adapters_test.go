package executor

import (
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string
	}{
		{name: "exec"},
		{name: "noop"},
		{name: "docker", wantErr: `executor "docker": unknown; want exec ` +
			"or noop"},
		{name: "", wantErr: `executor "": unknown`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(tt.name, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Errorf("New(%q) = %v, %v; want error %q", tt.name, got,
						err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.name, err)
			}
			if got.Name() != tt.name {
				t.Errorf("New(%q).Name() = %q", tt.name, got.Name())
			}
		})
	}
}
