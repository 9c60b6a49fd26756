package sqlite

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/sinks/archive"
)

// searchArchive holds three analyzed sessions: Portuguese with accents,
// English, and one that mentions neither refunds nor sessions.
func searchArchive(t *testing.T) (string, *Reader) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "archive.db")
	s := New(Options{Path: path, Columns: columnExprs(t, storyColumns)})
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct{ sid, title, summary string }{
		{"pt", "Mariana Costa (+55 11 98765-4321)", "Cliente pediu REEMBOLSO do sinal; sessão transferida para a gerência em São Paulo."},
		{"en", "John Smith", "Customer asked for a refund of the deposit; the session was escalated."},
		{"other", "Ana Lima", "Quer agendar visita ao apartamento de três quartos."},
	} {
		ev := load(t, "session_analyzed", "evt_"+c.sid).ev
		ev.Subject = c.sid
		ev.Timestamp = ev.Timestamp.Add(time.Duration(i) * time.Hour)
		var data map[string]any
		json.Unmarshal(ev.Data, &data)
		data["summary"], data["conversationTitle"] = c.summary, c.title
		data["summarizedAt"] = ev.Timestamp.Format(time.RFC3339Nano)
		ev.Data, _ = json.Marshal(data)
		if err := s.Send(ctx, delivery(ev, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return path, r
}

func TestSearch(t *testing.T) {
	t.Parallel()
	_, r := searchArchive(t)
	for _, tc := range []struct {
		query string
		want  []string // session ids, newest first
	}{
		{"reembolso OR refund", []string{"en", "pt"}},
		{"reembolso", []string{"pt"}},
		{"sessão", []string{"pt"}},
		{"sessao", []string{"pt"}}, // without the accent
		{"SESSAO", []string{"pt"}},
		{"session", []string{"en"}},
		{"sao paulo", []string{"pt"}},
		{"três", []string{"other"}},
		{"tres", []string{"other"}},
		{`"sessão transferida"`, []string{"pt"}},
		{"refun*", []string{"en"}},
		{"title:mariana", []string{"pt"}},
		{"title:reembolso", nil},
		{"(reembolso OR refund) NOT deposit", []string{"pt"}},
		{"nada", nil},
	} {
		hits, err := r.Search(context.Background(), tc.query, 10)
		if err != nil {
			t.Errorf("Search(%q): %v", tc.query, err)
			continue
		}
		var got []string
		for _, h := range hits {
			got = append(got, h.SessionID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Search(%q) = %v, want %v", tc.query, got, tc.want)
		}
	}
	hits, err := r.Search(context.Background(), "reembolso", 10)
	if err != nil || len(hits) != 1 || !strings.Contains(hits[0].Snippet, "[REEMBOLSO]") || hits[0].Channel != "WhatsApp Vendas" {
		t.Errorf("hit = %+v, %v; want the Portuguese session with [REEMBOLSO] in its snippet", hits, err)
	}
	if _, err := r.Search(context.Background(), `"unbalanced`, 10); err == nil {
		t.Error("a malformed query gave no error")
	}
}

// dbRows reads a table as Export sees it: columns in order, values as
// text (NULL as nil).
func dbRows(t *testing.T, r *Reader, table string) ([]string, [][]any) {
	t.Helper()
	cols, err := r.Columns(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	order := "id"
	if table == "events" {
		order = "timestamp, id"
	}
	var quoted []string
	for _, c := range cols {
		quoted = append(quoted, quote(c))
	}
	rows, err := r.db.Query("SELECT " + strings.Join(quoted, ", ") + " FROM " + table + " ORDER BY " + order)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b)
			}
		}
		out = append(out, vals)
	}
	return cols, out
}

func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	_, r := searchArchive(t)
	for _, table := range []string{"sessions", "events"} {
		cols, want := dbRows(t, r, table)
		if len(want) != 3 {
			t.Fatalf("%s: %d rows", table, len(want))
		}
		t.Run(table+"/csv", func(t *testing.T) {
			var buf bytes.Buffer
			n, err := r.Export(context.Background(), &buf, archive.ExportOptions{Format: "csv", Table: table})
			if err != nil || n != len(want) {
				t.Fatalf("Export = %d, %v", n, err)
			}
			records, err := csv.NewReader(&buf).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(records[0], cols) {
				t.Errorf("header = %v, want %v", records[0], cols)
			}
			if len(records)-1 != len(want) {
				t.Fatalf("%d records, want %d", len(records)-1, len(want))
			}
			for i, rec := range records[1:] {
				for j, v := range want[i] {
					// CSV is text: NULL is empty, numbers as SQLite prints them.
					wantText := ""
					switch x := v.(type) {
					case string:
						wantText = x
					case int64:
						wantText = strconv.FormatInt(x, 10)
					case float64:
						wantText = strconv.FormatFloat(x, 'f', -1, 64)
					}
					if rec[j] != wantText {
						t.Errorf("row %d %s = %q, want %q", i, cols[j], rec[j], wantText)
					}
				}
			}
		})
		t.Run(table+"/jsonl", func(t *testing.T) {
			var buf bytes.Buffer
			n, err := r.Export(context.Background(), &buf, archive.ExportOptions{Format: "jsonl", Table: table})
			if err != nil || n != len(want) {
				t.Fatalf("Export = %d, %v", n, err)
			}
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d", len(lines), len(want))
			}
			for i, line := range lines {
				dec := json.NewDecoder(strings.NewReader(line))
				dec.UseNumber()
				var obj map[string]any
				if err := dec.Decode(&obj); err != nil {
					t.Fatalf("line %d: %v\n%s", i, err, line)
				}
				// Keys come in column order.
				var keys []string
				kd := json.NewDecoder(strings.NewReader(line))
				kd.Token()
				for kd.More() {
					k, _ := kd.Token()
					keys = append(keys, k.(string))
					var skip json.RawMessage
					kd.Decode(&skip)
				}
				if !slices.Equal(keys, cols) {
					t.Errorf("keys = %v, want %v", keys, cols)
				}
				for j, v := range want[i] {
					got := obj[cols[j]]
					if archive.JSONColumns[cols[j]] && v != nil {
						// Embedded as JSON: compare as JSON.
						var wantObj any
						d := json.NewDecoder(strings.NewReader(v.(string)))
						d.UseNumber()
						d.Decode(&wantObj)
						if !reflect.DeepEqual(got, wantObj) {
							t.Errorf("row %d %s = %v, want %v", i, cols[j], got, wantObj)
						}
						continue
					}
					var wantJSON any = v
					switch x := v.(type) {
					case int64:
						wantJSON = json.Number(strconv.FormatInt(x, 10))
					case float64:
						wantJSON = json.Number(strconv.FormatFloat(x, 'f', -1, 64))
					}
					if !reflect.DeepEqual(got, wantJSON) {
						t.Errorf("row %d %s = %#v, want %#v", i, cols[j], got, wantJSON)
					}
				}
			}
			if strings.Contains(buf.String(), `\u003c`) {
				t.Error("JSONL escapes HTML characters")
			}
		})
	}
}

func TestExportFilters(t *testing.T) {
	t.Parallel()
	_, r := searchArchive(t)
	ctx := context.Background()
	cols, err := r.Columns(ctx, "sessions")
	if err != nil {
		t.Fatal(err)
	}
	since, _ := time.Parse(TimeFormat, "2026-11-21T15:00:00.000Z")
	for _, tc := range []struct {
		name, where string
		since       time.Time
		want        []string
	}{
		{"all", "", time.Time{}, []string{"pt", "en", "other"}},
		{"since", "", since, []string{"en", "other"}},
		{"where", `title startsWith "John"`, time.Time{}, []string{"en"}},
		{"where number", `lead_score >= 80 && session_id != "pt"`, time.Time{}, []string{"en", "other"}},
		{"where and since", `session_id in ["pt", "other"]`, since, []string{"other"}},
		{"failing rows do not match", `forwarded_to_name > 3`, time.Time{}, nil},
		{"json column", `fromJSON(smart_fields).city == "São Paulo"`, time.Time{}, []string{"pt", "en", "other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := archive.ExportOptions{Format: "jsonl", Since: tc.since}
			if tc.where != "" {
				w, err := archive.CompileWhere(tc.where, cols)
				if err != nil {
					t.Fatal(err)
				}
				o.Where = w
			}
			var buf bytes.Buffer
			if _, err := r.Export(ctx, &buf, o); err != nil {
				t.Fatal(err)
			}
			var got []string
			for line := range strings.Lines(buf.String()) {
				var row struct {
					SessionID string `json:"session_id"`
				}
				json.Unmarshal([]byte(line), &row)
				got = append(got, row.SessionID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("exported %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOpenReader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "nope.db")
	if _, err := OpenReader(ctx, missing); err == nil {
		t.Error("OpenReader of a missing file succeeded")
	}
	if _, err := OpenReader(ctx, missing); err == nil || fileExists(missing) {
		t.Error("OpenReader created the file")
	}
	path, r := searchArchive(t)
	// The reader cannot write.
	if _, err := r.db.Exec("DELETE FROM events"); err == nil {
		t.Error("the reader deleted rows")
	}
	// It reads while a sink writes.
	s := openSink(t, path)
	ev := load(t, "session_opened", "evt_live").ev
	if err := s.Send(ctx, delivery(ev, 1)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if n, err := r.Export(ctx, &buf, archive.ExportOptions{Format: "csv", Table: "events"}); err != nil || n != 4 {
		t.Errorf("Export while the sink is open = %d, %v; want 4", n, err)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
