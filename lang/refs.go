package lang

import (
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// FieldRef is a field of data that an expression reads by a constant
// path: data.smartFields.city, data["a"].b, or lookup(data, "a.b").
type FieldRef struct {
	// Path is the field's names, from data down.
	Path []string
	// Offsets are where each name is in the source, in bytes.
	Offsets []int
}

// DataRefs lists the fields of data the condition reads.
func (c *Condition) DataRefs() []FieldRef { return dataRefs(c.src, c.prog, 0) }

// DataRefs lists the fields of data the expression reads.
func (e *Expression) DataRefs() []FieldRef { return dataRefs(e.src, e.prog, 0) }

// DataRefs lists the fields of data the template's placeholders read;
// offsets are in the template.
func (t *Template) DataRefs() []FieldRef {
	var out []FieldRef
	for _, p := range t.parts {
		if p.prog != nil {
			out = append(out, dataRefs(p.code, p.prog, p.offset)...)
		}
	}
	return out
}

// dataRefs finds the member chains rooted at data in a compiled
// program, longest first where one extends another; base is added to
// every offset.
func dataRefs(src string, prog *vm.Program, base int) []FieldRef {
	var refs []FieldRef
	root := prog.Node()
	ast.Walk(&root, visitor(func(n ast.Node) {
		var ref FieldRef
		switch n := n.(type) {
		case *ast.MemberNode:
			if !chain(n, src, &ref) {
				return
			}
		case *ast.CallNode:
			id, ok := n.Callee.(*ast.IdentifierNode)
			if !ok || id.Value != "lookup" || len(n.Arguments) < 2 || !isData(n.Arguments[0]) {
				return
			}
			path, ok := n.Arguments[1].(*ast.StringNode)
			if !ok || path.Value == "" {
				return
			}
			at := byteOffset(src, path.Location().From) + 1 // past the quote
			for seg := range strings.SplitSeq(path.Value, ".") {
				ref.Path = append(ref.Path, seg)
				ref.Offsets = append(ref.Offsets, at)
				at += len(seg) + 1
			}
		default:
			return
		}
		for i := range ref.Offsets {
			ref.Offsets[i] += base
		}
		refs = append(refs, ref)
	}))
	// data.a.b is also walked as data.a: keep the longest.
	return slices.DeleteFunc(refs, func(r FieldRef) bool {
		return slices.ContainsFunc(refs, func(o FieldRef) bool {
			return len(o.Offsets) > len(r.Offsets) && o.Offsets[0] == r.Offsets[0]
		})
	})
}

// chain fills ref with the names of a member chain rooted at data, if n
// is one with constant names.
func chain(n *ast.MemberNode, src string, ref *FieldRef) bool {
	var cur ast.Node = n
	for {
		switch m := cur.(type) {
		case *ast.MemberNode:
			name, ok := m.Property.(*ast.StringNode)
			if !ok || m.Method {
				return false
			}
			at := byteOffset(src, name.Location().From)
			if at < len(src) && (src[at] == '"' || src[at] == '\'' || src[at] == '`') {
				at++ // data["name"]
			}
			ref.Path = append(ref.Path, name.Value)
			ref.Offsets = append(ref.Offsets, at)
			cur = m.Node
		case *ast.ChainNode:
			cur = m.Node
		case *ast.IdentifierNode:
			if m.Value != "data" || len(ref.Path) == 0 {
				return false
			}
			slices.Reverse(ref.Path)
			slices.Reverse(ref.Offsets)
			return true
		default:
			return false
		}
	}
}

func isData(n ast.Node) bool {
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == "data"
}
