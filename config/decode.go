package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// decoder turns a yaml.Node tree into Go values strictly: every unknown,
// duplicated or mistyped key is a Problem with the node's position, and
// decoding goes on so that one run reports every problem.
//
// yaml.v3's own strict mode (KnownFields) is lost as soon as a type has a
// custom UnmarshalYAML, and its type errors carry a line but no column;
// walking the node tree ourselves keeps both.
type decoder struct {
	cfg *Config
}

// nodeDecoder is implemented by types that decode themselves from a node.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

var (
	durationType = reflect.TypeFor[Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
	secretType   = reflect.TypeFor[Secret]()
	secretsType  = reflect.TypeFor[[]Secret]()
	decoderType  = reflect.TypeFor[nodeDecoder]()
)

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.cfg.add(Problem{Line: n.Line, Column: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.cfg.nodes[path] = n
	if v.Type() == secretType && d.cfg.secrets != nil {
		d.cfg.secrets[n] = true
	}
	if v.CanAddr() && v.Addr().Type().Implements(decoderType) {
		v.Addr().Interface().(nodeDecoder).decodeNode(d, n, path)
		return
	}
	if isNull(n) && v.Kind() != reflect.Pointer {
		return // keep the default
	}
	switch v.Type() {
	case durationType:
		if s, ok := d.scalar(n, path, "a duration"); ok {
			if dur, err := ParseDuration(s); err != nil {
				d.errorf(n, path, "%v", err)
			} else {
				v.SetInt(int64(dur))
			}
		}
		return
	case byteSizeType:
		if s, ok := d.scalar(n, path, "a size"); ok {
			if size, err := ParseByteSize(s); err != nil {
				d.errorf(n, path, "%v", err)
			} else {
				v.SetInt(int64(size))
			}
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want a mapping of keys to values, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kpath := path + "." + k.Value
			if prev, dup := seen[k.Value]; dup {
				d.errorf(k, kpath, "duplicate key %q (first at line %d)", k.Value, prev.Line)
				continue
			}
			seen[k.Value] = k
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, kpath)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
		}
		v.Set(m)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, path, "true or false"); ok {
			if b, err := strconv.ParseBool(s); err != nil {
				d.errorf(n, path, "want true or false, got %q", s)
			} else {
				v.SetBool(b)
			}
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if s, ok := d.scalar(n, path, "a whole number"); ok {
			if i, err := strconv.ParseInt(s, 10, 64); err != nil {
				d.errorf(n, path, "want a whole number, got %q", s)
			} else {
				v.SetInt(i)
			}
		}
	case reflect.Float64:
		if s, ok := d.scalar(n, path, "a number"); ok {
			if f, err := strconv.ParseFloat(s, 64); err != nil {
				d.errorf(n, path, "want a number, got %q", s)
			} else {
				v.SetFloat(f)
			}
		}
	case reflect.Interface:
		// Free-form YAML, such as a test case's event body.
		var x any
		if err := n.Decode(&x); err != nil {
			d.errorf(n, path, "%v", err)
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		panic(fmt.Sprintf("config: no decoder for %s at %s", v.Type(), path))
	}
}

// scalar returns a scalar node's text. Tags are ignored on purpose: a value
// that came from ${VAR} expansion is a string node whatever it holds.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "want %s, got %s", want, describe(n))
		return "", false
	}
	return n.Value, true
}

// structure decodes a mapping into a struct, field by yaml tag. A key
// "<name>_file" fills a Secret field "<name>" from a file.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of keys to values, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !d.field(v, fields, seen, k, val, path) {
			d.unknownKey(k, path, fields, where(path))
		}
	}
}

// field decodes one key of a struct mapping. It is shared with types that
// decode part of a mapping themselves (sinks, by type).
func (d *decoder) field(v reflect.Value, fields map[string][]int, seen map[string]*yaml.Node, k, val *yaml.Node, path string) bool {
	fpath := join(path, k.Value)
	name := k.Value
	fromFile := false
	idx, ok := fields[name]
	if !ok {
		if base, cut := strings.CutSuffix(name, "_file"); cut {
			if fi, found := fields[base]; found {
				if t := v.Type().FieldByIndex(fi).Type; t == secretType || t == secretsType {
					idx, ok, fromFile, name, fpath = fi, true, true, base, join(path, base)
				}
			}
		}
	}
	if !ok {
		return false
	}
	if prev, dup := seen[name]; dup {
		if prev.Value == k.Value {
			d.errorf(k, fpath, "duplicate key %q (first at line %d)", k.Value, prev.Line)
		} else {
			d.errorf(k, fpath, "set %s or %s, not both", name, name+"_file")
		}
		return true
	}
	seen[name] = k
	f := v.FieldByIndex(idx)
	if fromFile {
		d.cfg.nodes[fpath] = val
		if f.Type() == secretsType {
			// secrets_file: a list of files, one secret each.
			if val.Kind != yaml.SequenceNode {
				d.errorf(val, fpath+"_file", "want a list of file paths, got %s", describe(val))
				return true
			}
			out := make([]Secret, len(val.Content))
			for i, item := range val.Content {
				ipath := fmt.Sprintf("%s_file[%d]", fpath, i)
				d.cfg.nodes[fmt.Sprintf("%s[%d]", fpath, i)] = item
				out[i] = Secret(d.secretFile(item, ipath))
			}
			f.Set(reflect.ValueOf(out))
			return true
		}
		f.SetString(d.secretFile(val, fpath+"_file"))
		return true
	}
	d.decode(val, f, fpath)
	return true
}

// secretFile reads the secret in the file named by n: its content, one
// trailing newline dropped. A missing or empty file is a problem.
func (d *decoder) secretFile(n *yaml.Node, path string) string {
	s, ok := d.scalar(n, path, "a file path")
	if !ok {
		return ""
	}
	b, err := os.ReadFile(s)
	if err != nil {
		d.errorf(n, path, "read secret: %v", err)
		return ""
	}
	secret := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if secret == "" {
		d.errorf(n, path, "secret file %s is empty", s)
	}
	return secret
}

// unknownKey reports a key no field takes, suggesting the nearest one.
func (d *decoder) unknownKey(k *yaml.Node, path string, fields map[string][]int, what string) {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	msg := fmt.Sprintf("unknown key %q in %s", k.Value, what)
	if near := nearest(k.Value, names); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	} else {
		msg += "; valid keys: " + strings.Join(names, ", ")
	}
	d.errorf(k, join(path, k.Value), "%s", msg)
}

var fieldCache sync.Map // reflect.Type -> map[string][]int

// fieldsOf maps yaml key names to field indexes, following ",inline".
func fieldsOf(t reflect.Type) map[string][]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string][]int)
	}
	m := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" {
			for k, idx := range fieldsOf(f.Type) {
				m[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			continue
		}
		m[name] = []int{i}
	}
	fieldCache.Store(t, m)
	return m
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// where names a path for a message: "routes[0]", or "the top level".
func where(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Nearest returns the candidate within edit distance 2 of s, if any, for
// a "did you mean" suggestion.
func Nearest(s string, candidates []string) string { return nearest(s, candidates) }

// nearest returns the candidate within edit distance 2 of s, if any.
func nearest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if dist := editDistance(s, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
