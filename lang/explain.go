package lang

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"

	"github.com/switchyard/switchyard/event"
)

// Explanation is the value of an expression and of the sub-expressions
// that decided it: for && and ||, the operands that settled the result
// (the first false one of a false &&, both of a false ||); for !, its
// operand; for a comparison or another operator, both sides; for a
// conditional, the condition and the branch taken. Function calls,
// members and literals are leaves.
type Explanation struct {
	// Expr is the sub-expression, as expr prints it.
	Expr string `json:"expr"`
	// Value is its value, unless Err is set.
	Value any   `json:"-"`
	Err   error `json:"-"`
	// Op is the operator of a node with Operands.
	Op       string         `json:"op,omitempty"`
	Operands []*Explanation `json:"operands,omitempty"`
}

// MarshalJSON writes Value as JSON (null when there is none) and Err as
// its message, without escaping HTML.
func (e *Explanation) MarshalJSON() ([]byte, error) {
	type plain Explanation
	out := struct {
		*plain
		Value any    `json:"value"`
		Err   string `json:"error,omitempty"`
	}{plain: (*plain)(e), Value: e.Value}
	if e.Err != nil {
		out.Err = e.Err.Error()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Explain evaluates the condition against env, as Eval does, and the
// sub-expressions that decided its value. Each sub-expression is
// compiled on its own with the same environment and functions, so its
// value is what it is inside the condition; one that cannot stand alone
// (a variable from let, a predicate's #) is not broken down.
func (c *Condition) Explain(env *event.Env) *Explanation {
	root := &Explanation{Expr: strings.TrimSpace(c.src)}
	if ok, err := c.Eval(env); err != nil {
		root.Err = err
	} else {
		root.Value = ok
	}
	prog, err := expr.Compile(c.src, options(expr.Optimize(false))...)
	if err != nil {
		return root
	}
	if sub := explain(prog.Node(), env); sub != nil {
		root.Op, root.Operands = sub.Op, sub.Operands
	}
	return root
}

// explain evaluates node and its deciding operands; nil if the node
// cannot be evaluated on its own.
func explain(node ast.Node, env *event.Env) *Explanation {
	e := &Explanation{Expr: node.String()}
	prog, err := expr.Compile(e.Expr, options()...)
	if err != nil {
		return nil
	}
	e.Value, e.Err = runPlain(prog, env)
	var ferr *file.Error
	if errors.As(e.Err, &ferr) {
		// A position in the sub-expression would mislead: drop it.
		e.Err = errors.New(ferr.Message)
	}
	var operands []*Explanation
	switch n := node.(type) {
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			operands = []*Explanation{explain(n.Node, env)}
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			// Evaluate as expr does, left to right and no further than
			// needed: the right side may only be safe when the left
			// one holds (data.x != nil && data.x.y == 1).
			settles := n.Operator == "||" || n.Operator == "or"
			left := explain(n.Left, env)
			operands = []*Explanation{left}
			if b, ok := valueOf(left).(bool); ok && b != settles {
				right := explain(n.Right, env)
				if e.Err == nil && e.Value != settles {
					operands = append(operands, right) // both had to hold (or fail)
				} else {
					operands = []*Explanation{right} // the left side did not decide
				}
			}
		default:
			operands = []*Explanation{explain(n.Left, env), explain(n.Right, env)}
		}
	case *ast.ConditionalNode:
		cond := explain(n.Cond, env)
		operands = []*Explanation{cond}
		if cond != nil && cond.Err == nil {
			branch := n.Exp2
			if cond.Value == true {
				branch = n.Exp1
			}
			operands = append(operands, explain(branch, env))
		}
	}
	for _, o := range operands {
		if o == nil {
			return e // an operand that cannot stand alone: a leaf
		}
	}
	if len(operands) > 0 {
		e.Op, e.Operands = operator(node), operands
	}
	return e
}

func operator(node ast.Node) string {
	switch n := node.(type) {
	case *ast.UnaryNode:
		return n.Operator
	case *ast.BinaryNode:
		return n.Operator
	case *ast.ConditionalNode:
		return "?:"
	}
	return ""
}

// Substituted is the expression with its operands' values in place of
// the operands: `"qualified" == "escalated"` for
// `data.forwardType == "escalated"`. It is empty for leaves, logical
// operators and conditionals, whose operands are explained on their own.
func (e *Explanation) Substituted() string {
	if len(e.Operands) != 2 || e.Op == "?:" || e.Op == "&&" || e.Op == "||" || e.Op == "and" || e.Op == "or" {
		return ""
	}
	l, r := e.Operands[0], e.Operands[1]
	return operandText(l) + " " + e.Op + " " + operandText(r)
}

func operandText(e *Explanation) string {
	if e.Err != nil {
		return "(" + e.Expr + ": error)"
	}
	return Literal(e.Value)
}

// Result is the value as a literal, or the error.
func (e *Explanation) Result() string {
	if e.Err != nil {
		return "error: " + e.Err.Error()
	}
	return Literal(e.Value)
}

// Lines writes the explanation as indented lines, one per
// sub-expression: "expr → substituted → value".
func (e *Explanation) Lines(indent string) []string {
	var out []string
	var walk func(x *Explanation, depth int)
	walk = func(x *Explanation, depth int) {
		line := indent + strings.Repeat("  ", depth) + x.Expr
		if s := x.Substituted(); s != "" && s != x.Expr {
			line += "  →  " + s
		}
		if s := x.Result(); s != x.Expr {
			line += "  →  " + s
		}
		out = append(out, line)
		if x.Substituted() != "" {
			// Both operands are in the substituted text; break down
			// only those that are themselves operations.
			for _, o := range x.Operands {
				if len(o.Operands) > 0 {
					walk(o, depth+1)
				}
			}
			return
		}
		for _, o := range x.Operands {
			walk(o, depth+1)
		}
	}
	walk(e, 0)
	return out
}

// maxLiteral bounds how much of a list or object Literal shows.
const maxLiteral = 80

// Literal writes a value as it would be written in an expression:
// strings quoted, nil as nil, lists and objects as JSON (cut at 80
// characters), times in RFC 3339 and durations as Go writes them.
func Literal(v any) string {
	switch x := v.(type) {
	case nil:
		return "nil"
	case string:
		return strconv.Quote(x)
	case bool, int, int64, float64, json.Number:
		return Text(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case time.Duration:
		return x.String()
	}
	s := Text(v)
	if len(s) > maxLiteral {
		cut := maxLiteral
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// valueOf is an explanation's value; nil when it has none.
func valueOf(e *Explanation) any {
	if e == nil || e.Err != nil {
		return nil
	}
	return e.Value
}
