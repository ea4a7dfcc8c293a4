// Package constraint parses a job's capability requirements and matches
// them against the labels a peer advertises.
//
// A label is a key=value pair such as os=linux or docker=28.2.2. A
// constraint is one of:
//
//	key=value        key==value        key!=value
//	key in (a,b)     key notin (a,b)   key not in (a,b)
//	key              !key
//	key>=v           key<=v            key>v           key<v
//
// The orderings compare semantic versions, pre-releases included, so
// 1.3.0-beta1 satisfies rt>=0.6.1 and sorts before 1.3.0. A negative
// constraint (!=, notin, !key) holds when the label is absent.
package constraint

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
)

// Op is the operator of a constraint.
type Op string

// The operators. Their values are the spelling String uses.
const (
	OpEq        Op = "="
	OpNe        Op = "!="
	OpIn        Op = "in"
	OpNotIn     Op = "notin"
	OpExists    Op = "exists"
	OpNotExists Op = "notexists"
	OpGe        Op = ">="
	OpLe        Op = "<="
	OpGt        Op = ">"
	OpLt        Op = "<"
)

// Limits on labels and constraints.
const (
	MaxKeyLen        = 63
	MaxValueLen      = 255
	MaxConstraintLen = 1024
	MaxValues        = 64
)

// Constraint is one requirement on a peer's labels. Values holds one
// value for =, != and the orderings, one or more for in and notin, and
// none for exists and notexists. The zero Constraint matches nothing.
type Constraint struct {
	Key    string
	Op     Op
	Values []string
}

// Match reports whether c holds on labels. A constraint that Validate
// would reject never holds, and neither does an ordering whose label value
// is not a version. Match is safe for concurrent use.
func (c Constraint) Match(labels map[string]string) bool {
	if c.Validate() != nil {
		return false
	}
	value, ok := labels[c.Key]
	switch c.Op {
	case OpExists:
		return ok
	case OpNotExists:
		return !ok
	case OpEq:
		return ok && value == c.Values[0]
	case OpNe:
		return !ok || value != c.Values[0]
	case OpIn:
		return ok && slices.Contains(c.Values, value)
	case OpNotIn:
		return !ok || !slices.Contains(c.Values, value)
	}
	return ok && c.matchOrder(value)
}

// matchOrder reports whether value, as a version, stands in c's order to
// c's value.
func (c Constraint) matchOrder(value string) bool {
	have, err := semver.NewVersion(value)
	if err != nil {
		return false
	}
	want, err := semver.NewVersion(c.Values[0])
	if err != nil {
		return false
	}
	cmp := have.Compare(want)
	switch c.Op {
	case OpGe:
		return cmp >= 0
	case OpLe:
		return cmp <= 0
	case OpGt:
		return cmp > 0
	case OpLt:
		return cmp < 0
	}
	return false
}

// MatchAll reports whether every constraint in cs holds on labels. When
// one does not, failed points to a copy of the first that does not. An
// empty cs matches any labels.
func MatchAll(cs []Constraint, labels map[string]string) (ok bool,
	failed *Constraint) {
	for i := range cs {
		if !cs[i].Match(labels) {
			c := cs[i]
			return false, &c
		}
	}
	return true, nil
}

// String returns c in canonical form, which Parse reads back as an equal
// constraint: no spaces around = and the orderings, one space around in
// and notin, a comma without space between values.
func (c Constraint) String() string {
	switch c.Op {
	case OpExists:
		return c.Key
	case OpNotExists:
		return "!" + c.Key
	case OpIn, OpNotIn:
		return c.Key + " " + string(c.Op) +
			" (" + strings.Join(c.Values, ",") + ")"
	}
	value := ""
	if len(c.Values) > 0 {
		value = c.Values[0]
	}
	if c.Op == OpEq && strings.HasPrefix(value, "=") {
		// "k==x" reads as k equal to x, so a value that starts with "="
		// needs the two-character spelling: "k===x".
		return c.Key + "==" + value
	}
	return c.Key + string(c.Op) + value
}

// Validate reports whether c is well formed: a valid key, a known
// operator, the number of values it takes, each value valid, and a
// version for the orderings. Parse returns only valid constraints.
func (c Constraint) Validate() error {
	if err := checkKey(c.Key); err != nil {
		return err
	}
	switch c.Op {
	case OpExists, OpNotExists:
		if len(c.Values) != 0 {
			return fmt.Errorf("%s takes no value, got %d", c.Op,
				len(c.Values))
		}
		return nil
	case OpIn, OpNotIn:
		return checkList(c.Op, c.Values)
	case OpEq, OpNe, OpGe, OpLe, OpGt, OpLt:
		if len(c.Values) != 1 {
			return fmt.Errorf("%q takes one value, got %d", c.Op,
				len(c.Values))
		}
		return checkOperand(string(c.Op), c.Op, c.Values[0])
	}
	return fmt.Errorf("unknown operator %q", c.Op)
}

func checkList(op Op, values []string) error {
	switch {
	case len(values) == 0:
		return fmt.Errorf("empty list after %q", op)
	case len(values) > MaxValues:
		return fmt.Errorf("%d values in the list, more than %d",
			len(values), MaxValues)
	}
	for _, v := range values {
		if err := checkValue(v); err != nil {
			return err
		}
	}
	return nil
}

// checkOperand checks the single value of op, which was spelled token.
func checkOperand(token string, op Op, value string) error {
	if value == "" {
		return fmt.Errorf("missing value after %q", token)
	}
	if err := checkValue(value); err != nil {
		return err
	}
	switch op {
	case OpGe, OpLe, OpGt, OpLt:
		if _, err := semver.NewVersion(value); err != nil {
			return fmt.Errorf("value %q after %q is not a version",
				clip(value), token)
		}
	}
	return nil
}

// ValidLabel reports whether key=value is a label a peer may advertise:
// the key and value follow the same rules as in a constraint, and the
// value is not empty.
func ValidLabel(key, value string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("label %q: %w", key, err)
	}
	if value == "" {
		return fmt.Errorf("label %q: empty value", key)
	}
	if err := checkValue(value); err != nil {
		return fmt.Errorf("label %q: %w", key, err)
	}
	return nil
}

// checkKey checks a label key: 1 to MaxKeyLen characters from
// [A-Za-z0-9._/-].
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("empty key")
	case len(key) > MaxKeyLen:
		return fmt.Errorf("key %q is %d characters, more than %d",
			clip(key), len(key), MaxKeyLen)
	}
	for _, r := range key {
		if !isKeyChar(r) {
			return fmt.Errorf("key %q has %q; keys use A-Z a-z 0-9 . _ / -",
				clip(key), r)
		}
	}
	return nil
}

func isKeyChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' ||
		r >= '0' && r <= '9' || r == '.' || r == '_' || r == '/' || r == '-'
}

// checkValue checks a label value other than for emptiness: at most
// MaxValueLen bytes of printable UTF-8 without whitespace, commas or
// parentheses.
func checkValue(value string) error {
	if len(value) > MaxValueLen {
		return fmt.Errorf("value %q is %d characters, more than %d",
			clip(value), len(value), MaxValueLen)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("value %q is not valid UTF-8", clip(value))
	}
	for i, r := range value {
		switch {
		case r == ',' || r == '(' || r == ')':
			return fmt.Errorf("value %q has %q, which values may not have",
				clip(value), r)
		case unicode.IsSpace(r):
			return fmt.Errorf("value %q has whitespace at byte %d",
				clip(value), i)
		case !unicode.IsPrint(r):
			return fmt.Errorf("value %q has the unprintable %q at byte %d",
				clip(value), r, i)
		}
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	const show = 40
	if len(s) <= show {
		return s
	}
	return s[:show] + "..."
}
