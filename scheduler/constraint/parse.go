package constraint

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// comparisons are the symbolic operators, longest spelling first so that
// "==" and ">=" are not read as "=" and ">".
var comparisons = []struct {
	token string
	op    Op
}{
	{"==", OpEq}, {"!=", OpNe}, {">=", OpGe}, {"<=", OpLe},
	{"=", OpEq}, {">", OpGt}, {"<", OpLt},
}

// Parse reads one constraint in the syntax the package documents.
// Whitespace around tokens is ignored. The error is one line that quotes
// the text and says what is wrong with it.
func Parse(s string) (Constraint, error) {
	c, err := parse(s)
	if err != nil {
		return Constraint{}, fmt.Errorf("constraint %q: %w", clipText(s), err)
	}
	return c, nil
}

// ParseAll parses a job's require list. The error names the index of the
// first bad entry, as in "require[2]: constraint ...". An empty list
// yields no constraints and no error.
func ParseAll(ss []string) ([]Constraint, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	cs := make([]Constraint, 0, len(ss))
	for i, s := range ss {
		c, err := Parse(s)
		if err != nil {
			return nil, fmt.Errorf("require[%d]: %w", i, err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// MustParse is Parse for constraints written in code; it panics if s is
// not a valid constraint.
func MustParse(s string) Constraint {
	c, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return c
}

func parse(s string) (Constraint, error) {
	if len(s) > MaxConstraintLen {
		return Constraint{}, fmt.Errorf("%d characters, more than %d",
			len(s), MaxConstraintLen)
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return Constraint{}, errors.New("empty")
	}
	if rest, ok := strings.CutPrefix(t, "!"); ok {
		return parseAbsent(strings.TrimSpace(rest))
	}

	key, rest := cutKey(t)
	if key == "" {
		return Constraint{}, fmt.Errorf("missing key before %q", clip(rest))
	}
	if err := checkKey(key); err != nil {
		return Constraint{}, err
	}
	rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
	if rest == "" {
		return Constraint{Key: key, Op: OpExists}, nil
	}
	for _, cmp := range comparisons {
		if operand, ok := strings.CutPrefix(rest, cmp.token); ok {
			return parseComparison(key, cmp.token, cmp.op, operand)
		}
	}
	if list, ok := cutWord(rest, "notin"); ok {
		return parseList(key, OpNotIn, list)
	}
	if after, ok := cutWord(rest, "not"); ok {
		if list, ok := cutWord(after, "in"); ok {
			return parseList(key, OpNotIn, list)
		}
	}
	if list, ok := cutWord(rest, "in"); ok {
		return parseList(key, OpIn, list)
	}
	return Constraint{}, fmt.Errorf("unexpected %q after key %q",
		clip(rest), key)
}

// parseAbsent parses what follows the "!" of "!key".
func parseAbsent(t string) (Constraint, error) {
	key, rest := cutKey(t)
	if err := checkKey(key); err != nil {
		return Constraint{}, fmt.Errorf("after \"!\": %w", err)
	}
	if rest != "" {
		return Constraint{}, fmt.Errorf("unexpected %q after \"!%s\"",
			clip(rest), key)
	}
	return Constraint{Key: key, Op: OpNotExists}, nil
}

func parseComparison(key, token string, op Op,
	operand string) (Constraint, error) {
	value := strings.TrimSpace(operand)
	if err := checkOperand(token, op, value); err != nil {
		return Constraint{}, err
	}
	return Constraint{Key: key, Op: op, Values: []string{value}}, nil
}

// parseList parses the "(a,b)" after in or notin.
func parseList(key string, op Op, t string) (Constraint, error) {
	inner, ok := strings.CutPrefix(t, "(")
	if !ok {
		return Constraint{}, fmt.Errorf("missing \"(\" after %q", op)
	}
	end := strings.IndexByte(inner, ')')
	switch {
	case end < 0:
		return Constraint{}, fmt.Errorf("unbalanced parentheses: "+
			"missing \")\" after %q", op)
	case strings.IndexByte(inner[:end], '(') >= 0:
		return Constraint{}, errors.New("unbalanced parentheses: " +
			"\"(\" inside the list")
	}
	if tail := strings.TrimSpace(inner[end+1:]); tail != "" {
		if strings.ContainsAny(tail, "()") {
			return Constraint{}, errors.New("unbalanced parentheses: " +
				"text after the list's \")\"")
		}
		return Constraint{}, fmt.Errorf("unexpected %q after the list",
			clip(tail))
	}

	list := inner[:end]
	if strings.TrimSpace(list) == "" {
		return Constraint{}, fmt.Errorf("empty list after %q", op)
	}
	parts := strings.Split(list, ",")
	if len(parts) > MaxValues {
		return Constraint{}, fmt.Errorf("%d values in the list, more "+
			"than %d", len(parts), MaxValues)
	}
	values := make([]string, len(parts))
	for i, p := range parts {
		values[i] = strings.TrimSpace(p)
		if values[i] == "" {
			return Constraint{}, fmt.Errorf("empty value at position %d "+
				"of the list", i+1)
		}
		if err := checkValue(values[i]); err != nil {
			return Constraint{}, err
		}
	}
	return Constraint{Key: key, Op: op, Values: values}, nil
}

// cutKey splits t after its leading run of key characters.
func cutKey(t string) (key, rest string) {
	i := strings.IndexFunc(t, func(r rune) bool { return !isKeyChar(r) })
	if i < 0 {
		return t, ""
	}
	return t[:i], t[i:]
}

// cutWord reports whether t starts with word as a whole word, one followed
// by the end, whitespace or "(", and returns what follows it with leading
// whitespace removed.
func cutWord(t, word string) (string, bool) {
	rest, ok := strings.CutPrefix(t, word)
	if !ok {
		return "", false
	}
	trimmed := strings.TrimLeftFunc(rest, unicode.IsSpace)
	if rest != "" && trimmed == rest && rest[0] != '(' {
		return "", false
	}
	return trimmed, true
}

// clipText shortens a whole constraint for an error message.
func clipText(s string) string {
	const show = 100
	if len(s) <= show {
		return s
	}
	return s[:show] + "..."
}
