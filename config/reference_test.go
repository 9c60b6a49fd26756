package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// refKey is a configuration key: its path as the reference writes it
// (sinks[].retry.max_attempts), the sink type it belongs to (empty for
// keys every sink, or no sink, has), and the _file twin a secret has.
type refKey struct {
	path, sinkType, fileTwin string
}

// configKeys lists every key the decoder accepts, from the yaml tags of
// the configuration's types.
func configKeys() []refKey {
	var out []refKey
	var walk func(t reflect.Type, prefix, sinkType string)
	walk = func(t reflect.Type, prefix, sinkType string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			k := refKey{path: prefix + name, sinkType: sinkType}
			if f.Type == secretType || f.Type == secretsType {
				k.fileTwin = name + "_file"
			}
			out = append(out, k)
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft == reflect.TypeFor[Rate]() || ft == reflect.TypeFor[SlackBlocks]() || ft == durationType || ft == byteSizeType:
			case ft.Kind() == reflect.Struct:
				walk(ft, k.path+".", sinkType)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), k.path+"[].", sinkType)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", "")
	// The keys of each sink type, decoded beside the common ones.
	types := map[string]any{"slack": SlackSink{}, "sqlite": SQLiteSink{}, "postgres": PostgresSink{}, "http": HTTPSink{}, "file": FileSink{}, "stdout": StdoutSink{}}
	for _, typ := range SinkTypes {
		if types[typ] == nil {
			panic("configKeys: sink type " + typ + " has no settings type here")
		}
	}
	for typ, v := range types {
		walk(reflect.TypeOf(v), "sinks[].", typ)
	}
	return out
}

// refEntry is a row of the reference: the heading it is under and the
// row's text.
type refEntry struct {
	heading, row string
}

var refRow = regexp.MustCompile("^\\| `([^`]+)` \\|")

// referenceEntries reads the key rows of docs/configuration.md: table
// rows whose first cell is a key in backticks.
func referenceEntries(t *testing.T) map[string][]refEntry {
	t.Helper()
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]refEntry{}
	heading := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			heading = line
			// A top-level section is documented by its heading: "## server".
			if name, ok := strings.CutPrefix(line, "## "); ok && !strings.ContainsAny(name, " `") {
				out[name] = append(out[name], refEntry{heading, line})
			}
		}
		if m := refRow.FindStringSubmatch(line); m != nil {
			out[m[1]] = append(out[m[1]], refEntry{heading, line})
		}
	}
	return out
}

// TestReferenceNamesEveryKey: every key of the configuration has a row in
// docs/configuration.md (a sink type's keys under that type's heading,
// a secret's row naming its _file twin), and every row names a key that
// exists. Adding a key without documenting it fails here.
func TestReferenceNamesEveryKey(t *testing.T) {
	t.Parallel()
	entries := referenceEntries(t)
	keys := configKeys()
	if len(keys) < 90 {
		t.Fatalf("found %d keys: the walk over the types is broken", len(keys))
	}
	known := map[string]bool{}
	for _, k := range keys {
		known[k.path] = true
		rows := entries[k.path]
		if k.sinkType != "" {
			rows = slices.DeleteFunc(slices.Clone(rows), func(e refEntry) bool {
				return !strings.Contains(e.heading, "`type: "+k.sinkType+"`")
			})
		}
		where := "docs/configuration.md"
		if k.sinkType != "" {
			where += ", under a heading naming `type: " + k.sinkType + "`,"
		}
		switch {
		case k.sinkType == "stdout":
			// stdout has no keys of its own.
		case len(rows) == 0:
			t.Errorf("%s has no row in %s: add | `%s` | default | what it does |", k.path, where, k.path)
		case k.fileTwin != "" && !strings.Contains(rows[0].row, k.fileTwin):
			t.Errorf("the row of %s does not name its twin %s", k.path, k.fileTwin)
		}
	}
	for path, es := range entries {
		if !known[path] && strings.HasPrefix(es[0].row, "|") {
			t.Errorf("docs/configuration.md has a row for %s, which is not a configuration key", path)
		}
	}
}
