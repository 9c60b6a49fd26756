package lang

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestDataRefs(t *testing.T) {
	t.Parallel()
	show := func(refs []FieldRef, src string) []string {
		var out []string
		for _, r := range refs {
			var parts []string
			for i, name := range r.Path {
				// Each offset points at its name in the source.
				if !strings.HasPrefix(src[r.Offsets[i]:], name) {
					t.Errorf("%q: %s is not at offset %d", src, name, r.Offsets[i])
				}
				parts = append(parts, fmt.Sprintf("%s@%d", name, r.Offsets[i]))
			}
			out = append(out, strings.Join(parts, "."))
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{`data.forwardType == "escalated"`, []string{"forwardType@5"}},
		{`data.smartFields.city == "Recife" && data.smartFields?.leadScore > 50`, []string{"smartFields@42.leadScore@55", "smartFields@5.city@17"}},
		{`data["forward-type"].x != nil`, []string{"forward-type@6.x@21"}},
		{`lookup(data, "smartFields.city", "") != "" && get(data, "x") == nil`, []string{"smartFields@14.city@26"}},
		{`data[eventType] == 1 || subject == "x" || data.a.b.c == 1`, []string{"a@47.b@49.c@51"}},
		{`any(data.tags, # == "vip") && lower(data.título) == "á"`, []string{"tags@9", "título@41"}},
		{`eventType startsWith "session."`, nil},
	} {
		c, err := CompileCondition(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		if got := show(c.DataRefs(), tc.src); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.src, got, tc.want)
		}
	}
	tmpl := MustParseTemplate(`Hi {{ data.name }}, {{ lookup(data, "a.b") ?? data.c }}`)
	if got := show(tmpl.DataRefs(), tmpl.String()); !slices.Equal(got, []string{"a@37.b@39", "c@51", "name@11"}) {
		t.Errorf("template: %v", got)
	}
}
