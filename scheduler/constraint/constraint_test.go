package constraint

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Constraint
	}{
		{"os=linux", Constraint{"os", OpEq, []string{"linux"}}},
		{"os==linux", Constraint{"os", OpEq, []string{"linux"}}},
		{"  os  =  linux  ", Constraint{"os", OpEq, []string{"linux"}}},
		{"zone!=lab-b", Constraint{"zone", OpNe, []string{"lab-b"}}},
		{"arch in (amd64,arm64)",
			Constraint{"arch", OpIn, []string{"amd64", "arm64"}}},
		{"arch in( amd64 , arm64 )",
			Constraint{"arch", OpIn, []string{"amd64", "arm64"}}},
		{"arch notin (386)", Constraint{"arch", OpNotIn, []string{"386"}}},
		{"arch not in (386, arm)",
			Constraint{"arch", OpNotIn, []string{"386", "arm"}}},
		{"arch notin(386)", Constraint{"arch", OpNotIn, []string{"386"}}},
		{"gpu", Constraint{"gpu", OpExists, nil}},
		{"  gpu\t", Constraint{"gpu", OpExists, nil}},
		{"!gpu", Constraint{"gpu", OpNotExists, nil}},
		{"! gpu", Constraint{"gpu", OpNotExists, nil}},
		{"docker>=28.2", Constraint{"docker", OpGe, []string{"28.2"}}},
		{"python <= 3.13", Constraint{"python", OpLe, []string{"3.13"}}},
		{"cpus>4", Constraint{"cpus", OpGt, []string{"4"}}},
		{"rt<v1.0.0-rc1", Constraint{"rt", OpLt, []string{"v1.0.0-rc1"}}},
		{"k8s.io/role=worker",
			Constraint{"k8s.io/role", OpEq, []string{"worker"}}},
		{"token=a=b", Constraint{"token", OpEq, []string{"a=b"}}},
		{"token===b", Constraint{"token", OpEq, []string{"=b"}}},
		{"not in (a)", Constraint{"not", OpIn, []string{"a"}}},
		{"in", Constraint{"in", OpExists, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	_, err := Parse("gpu>=")
	want := `constraint "gpu>=": missing value after ">="`
	if err == nil || err.Error() != want {
		t.Errorf("Parse(\"gpu>=\") error = %v, want %s", err, want)
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen+1)
	many := strings.TrimSuffix(strings.Repeat("v,", MaxValues+1), ",")
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"blank", "  \t ", "empty"},
		{"no key", "=linux", `missing key before "=linux"`},
		{"bang only", "!", `after "!": empty key`},
		{"bad key char", "os@=linux", `unexpected "@=linux" after key "os"`},
		{"key after bang", "!os=linux", `unexpected "=linux" after "!os"`},
		{"key too long", long + "=v", "more than 63"},
		{"missing value", "os=", `missing value after "="`},
		{"missing value ==", "os== ", `missing value after "=="`},
		{"missing value !=", "os!=", `missing value after "!="`},
		{"space in value", "os=linux mac", "has whitespace"},
		{"comma in value", "os=linux,mac", `has ','`},
		{"paren in value", "os=(linux)", `has '('`},
		{"value too long", "os=" + strings.Repeat("v", MaxValueLen+1),
			"more than 255"},
		{"not a version", "docker>=latest",
			`value "latest" after ">=" is not a version`},
		{"four parts", "rt<1.2.3.4", "is not a version"},
		{"unknown word", "os is linux", `unexpected "is linux"`},
		{"in without list", "arch in", `missing "(" after "in"`},
		{"in without paren", "arch in amd64)", `missing "(" after "in"`},
		{"unclosed", "arch in (amd64,arm64", `missing ")"`},
		{"nested", "arch in ((amd64))", `"(" inside the list`},
		{"extra close", "arch in (amd64))", "unbalanced parentheses"},
		{"text after list", "arch in (amd64) x", `unexpected "x" after`},
		{"empty list", "arch in ( )", `empty list after "in"`},
		{"empty item", "arch in (a,,b)", "empty value at position 2"},
		{"trailing comma", "arch notin (a,)", "empty value at position 2"},
		{"too many values", "v in (" + many + ")", "65 values"},
		{"too long", "k in (" + strings.Repeat("v,", 600) + "v)",
			"more than 1024"},
		{"not utf-8", "os=\xff", "not valid UTF-8"},
		{"control char", "os=a\x00b", "unprintable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tt.in, got)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("Parse(%q) error = %q, want it to contain %q",
					tt.in, msg, tt.want)
			}
			if !strings.HasPrefix(msg, "constraint \"") ||
				strings.Contains(msg, "\n") || len(msg) > 300 {
				t.Errorf("error %q is not one short line quoting the text",
					msg)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	labels := map[string]string{
		"os": "linux", "arch": "amd64", "cpus": "8",
		"memory": "17179869184", "docker": "28.2.2", "zone": "lab-b",
		"gpu": "true", "rt": "1.3.0-beta1", "name": "edge-7",
	}
	tests := []struct {
		in   string
		want bool
	}{
		{"os=linux", true},
		{"os=darwin", false},
		{"absent=x", false},
		{"os!=darwin", true},
		{"os!=linux", false},
		{"absent!=x", true},
		{"arch in (arm64,amd64)", true},
		{"arch in (arm64)", false},
		{"absent in (x)", false},
		{"arch notin (arm64)", true},
		{"arch notin (arm64,amd64)", false},
		{"absent notin (x)", true},
		{"gpu", true},
		{"absent", false},
		{"!gpu", false},
		{"!absent", true},
		{"docker>=28.2", true},
		{"docker>=28.2.2", true},
		{"docker>28.2.2", false},
		{"docker<=28.2.2", true},
		{"docker<29", true},
		{"docker>28", true},
		{"cpus>=4", true},
		{"cpus<8", false},
		{"memory>=8589934592", true},
		{"absent>=1", false},
		{"absent<1", false},
		{"name>=1.0", false}, // not a version: never ordered
		{"name<1.0", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c := MustParse(tt.in)
			if got := c.Match(labels); got != tt.want {
				t.Errorf("%q.Match = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestVersionOrder(t *testing.T) {
	tests := []struct {
		constraint, value string
		want              bool
	}{
		{"rt>=0.6.1", "1.3.0-beta1", true},
		{"rt<1.3.0", "1.3.0-beta1", true},
		{"rt>=1.3.0", "1.3.0-beta1", false},
		{"rt>1.3.0-beta1", "1.3.0", true},
		{"rt>1.3.0-alpha", "1.3.0-beta1", true},
		{"rt>0.8.0", "0.10.0", true},
		{"rt<0.8.0", "0.10.0", false},
		{"rt>=28.2", "28.2.0", true},
		{"rt<=28.2", "28.2.0", true},
		{"rt>4", "v4.0.1", true},
		{"rt>=v1.2.3", "1.2.3", true},
		{"rt<=1.2.3", "1.2.3+build.5", true},
		{"rt>=1.0", "latest", false},
		{"rt<99", "", false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s on %q", tt.constraint, tt.value)
		t.Run(name, func(t *testing.T) {
			c := MustParse(tt.constraint)
			got := c.Match(map[string]string{"rt": tt.value})
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchAll(t *testing.T) {
	labels := map[string]string{"os": "linux", "docker": "28.2.2"}
	tests := []struct {
		require    []string
		wantOK     bool
		wantFailed string
	}{
		{nil, true, ""},
		{[]string{"os=linux", "docker>=27"}, true, ""},
		{[]string{"os=linux", "gpu", "docker>=29"}, false, "gpu"},
		{[]string{"docker>=29", "gpu"}, false, "docker>=29"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.require, " "), func(t *testing.T) {
			cs, err := ParseAll(tt.require)
			if err != nil {
				t.Fatalf("ParseAll: %v", err)
			}
			ok, failed := MatchAll(cs, labels)
			if ok != tt.wantOK {
				t.Errorf("ok = %v, want %v", ok, tt.wantOK)
			}
			got := ""
			if failed != nil {
				got = failed.String()
			}
			if got != tt.wantFailed {
				t.Errorf("failed = %q, want %q", got, tt.wantFailed)
			}
		})
	}
}

func TestParseAllNamesIndex(t *testing.T) {
	_, err := ParseAll([]string{"os=linux", "gpu", "docker>=", "x"})
	want := `require[2]: constraint "docker>=": missing value after ">="`
	if err == nil || err.Error() != want {
		t.Errorf("ParseAll error = %v, want %s", err, want)
	}
}

func TestStringRoundTrip(t *testing.T) {
	tests := []struct{ in, want string }{
		{"os = linux", "os=linux"},
		{"os == linux", "os=linux"},
		{"os != linux", "os!=linux"},
		{"arch in ( a , b )", "arch in (a,b)"},
		{"arch not in (a)", "arch notin (a)"},
		{" gpu ", "gpu"},
		{"! gpu", "!gpu"},
		{"rt >= 1.3.0-beta1", "rt>=1.3.0-beta1"},
		{"rt <= 2", "rt<=2"},
		{"rt > 2", "rt>2"},
		{"rt < 2", "rt<2"},
		{"k = =x", "k===x"},
		{"k != =x", "k!==x"},
		{"k = >x", "k=>x"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c := MustParse(tt.in)
			if got := c.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			again, err := Parse(c.String())
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.String(), err)
			}
			if !reflect.DeepEqual(again, c) {
				t.Errorf("Parse(String()) = %#v, want %#v", again, c)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Constraint
		want string // part of the error; empty for valid
	}{
		{"valid", Constraint{"os", OpEq, []string{"linux"}}, ""},
		{"zero", Constraint{}, "empty key"},
		{"unknown op", Constraint{"os", "~", []string{"x"}}, "unknown operator"},
		{"eq without value", Constraint{"os", OpEq, nil}, "one value"},
		{"exists with value", Constraint{"os", OpExists, []string{"x"}},
			"no value"},
		{"in without values", Constraint{"os", OpIn, nil}, "empty list"},
		{"bad version", Constraint{"rt", OpGe, []string{"x"}},
			"not a version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil ||
				!strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want error containing %q",
					err, tt.want)
			}
			if tt.want != "" {
				labels := map[string]string{"os": "linux", "rt": "1"}
				if tt.c.Match(labels) {
					t.Errorf("invalid constraint %#v matched", tt.c)
				}
			}
		})
	}
}

func TestValidLabel(t *testing.T) {
	tests := []struct {
		key, value, want string // want: part of the error; empty for valid
	}{
		{"os", "linux", ""},
		{"docker", "28.2.2", ""},
		{"k8s.io/zone_name-1", "lab-b", ""},
		{"memory", "17179869184", ""},
		{"", "x", `label "": empty key`},
		{"bad key", "x", `has ' '`},
		{"os=", "x", `has '='`},
		{strings.Repeat("k", 64), "x", "more than 63"},
		{"os", "", `label "os": empty value`},
		{"os", "a b", "whitespace"},
		{"os", "a,b", `has ','`},
		{"os", "a)", `has ')'`},
		{"os", strings.Repeat("v", 256), "more than 255"},
		{"os", strings.Repeat("v", 255), ""},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			err := ValidLabel(tt.key, tt.value)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("ValidLabel = %v, want nil", err)
			case tt.want != "" && (err == nil ||
				!strings.Contains(err.Error(), tt.want)):
				t.Fatalf("ValidLabel = %v, want error containing %q",
					err, tt.want)
			}
		})
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse of a bad constraint did not panic")
		}
	}()
	MustParse("os=")
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"os=linux", "os==linux", "zone!=lab-b", "arch in (a,b)",
		"arch notin (a)", "arch not in (a, b)", "gpu", "!gpu",
		"rt>=1.3.0-beta1", "rt<=2", "rt>v1", "rt<0.10.0", "k===x",
		"k!==x", "in in (in)", "not not in (x)", "a in ((b)", "=",
		"x>=y", " k = v ", "k notin(a)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("Parse(%q) error spans lines: %q", s, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %#v, which is invalid: %v", s, c, err)
		}
		again, err := Parse(c.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %#v, but Parse(%q): %v",
				s, c, c.String(), err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("Parse(%q) = %#v, but Parse(%q) = %#v",
				s, c, c.String(), again)
		}
		c.Match(map[string]string{c.Key: "1.0.0"})
	})
}
