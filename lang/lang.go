// Package lang is Switchyard's expression language: expr-lang/expr over
// the event model (event.Env), used for route conditions and for the
// {{ }} templates of sinks. Everything is compiled and type-checked once,
// at config load.
package lang

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/switchyard/switchyard/event"
)

// SyntaxError is an expression that does not compile, with the 1-based
// line and column inside the source text where the problem is.
type SyntaxError struct {
	Line, Column int
	Msg          string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg)
}

// maxNodes bounds the size of one expression, so a config cannot make
// evaluation arbitrarily expensive.
const maxNodes = 2000

func options(extra ...expr.Option) []expr.Option {
	opts := append([]expr.Option{
		expr.Env(event.Env{}),
		expr.MaxNodes(maxNodes),
	}, Functions()...)
	return append(opts, extra...)
}

// compile compiles src; a failure is a *SyntaxError located in src.
func compile(src string, extra ...expr.Option) (*vm.Program, error) {
	prog, err := expr.Compile(src, options(extra...)...)
	if err != nil {
		return nil, syntaxError(err)
	}
	if err := checkPatterns(src, prog.Node()); err != nil {
		return nil, err
	}
	return prog, nil
}

func syntaxError(err error) error {
	var ferr *file.Error
	if errors.As(err, &ferr) {
		return &SyntaxError{Line: ferr.Line, Column: ferr.Column + 1, Msg: ferr.Message}
	}
	return &SyntaxError{Line: 1, Column: 1, Msg: err.Error()}
}

// vms reuses expr's virtual machines: a fresh one per run allocates its
// stack each time.
var vms = sync.Pool{New: func() any { return new(vm.VM) }}

func run(prog *vm.Program, env *event.Env) (any, error) {
	out, err := runPlain(prog, env)
	if err != nil {
		return nil, runtimeError(err)
	}
	return out, nil
}

// runPlain is run with expr's error as it is.
func runPlain(prog *vm.Program, env *event.Env) (any, error) {
	m := vms.Get().(*vm.VM)
	defer vms.Put(m)
	return m.Run(prog, env)
}

// runtimeError drops expr's source snippet (a multi-line excerpt) from a
// runtime error, keeping its message and position on one line for logs.
func runtimeError(err error) error {
	var ferr *file.Error
	if errors.As(err, &ferr) {
		return fmt.Errorf("%s (at %d:%d)", ferr.Message, ferr.Line, ferr.Column+1)
	}
	return err
}

// Condition is a compiled boolean expression, such as a route's when.
type Condition struct {
	src  string
	prog *vm.Program
}

// CompileCondition compiles src, which must evaluate to a bool.
func CompileCondition(src string) (*Condition, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &SyntaxError{Line: 1, Column: 1, Msg: "empty expression"}
	}
	prog, err := compile(src, expr.AsBool())
	if err != nil {
		return nil, err
	}
	return &Condition{src: src, prog: prog}, nil
}

// String returns the source text.
func (c *Condition) String() string { return c.src }

// Eval evaluates the condition against env.
func (c *Condition) Eval(env *event.Env) (bool, error) {
	out, err := run(c.prog, env)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("expression gave %T, want bool", out)
	}
	return b, nil
}

// Expression is a compiled expression of any type, such as a source's
// dedup_key.
type Expression struct {
	src  string
	prog *vm.Program
}

// CompileExpression compiles src.
func CompileExpression(src string) (*Expression, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &SyntaxError{Line: 1, Column: 1, Msg: "empty expression"}
	}
	prog, err := compile(src)
	if err != nil {
		return nil, err
	}
	return &Expression{src: src, prog: prog}, nil
}

// String returns the source text.
func (e *Expression) String() string { return e.src }

// Kind is the kind of value the expression gives, as far as the type
// checker knows at load: reflect.Interface when it depends on the event
// (a field of data can hold anything).
func (e *Expression) Kind() reflect.Kind {
	if t := e.prog.Node().Type(); t != nil {
		return t.Kind()
	}
	return reflect.Interface
}

// Eval evaluates the expression against env.
func (e *Expression) Eval(env *event.Env) (any, error) { return run(e.prog, env) }
