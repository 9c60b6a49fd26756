package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/switchyard/switchyard/app"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/dryrun"
)

const testSynopsis = "test --config FILE [--source NAME] [--header 'K: V']... [--json] EVENT.json...\n       switchyard test --config FILE --cases CASES.yaml"

func test(args []string, stdout, stderr io.Writer) error {
	return testAt(args, stdout, stderr, time.Now)
}

// testAt is test with the clock that gives events their receive time.
func testAt(args []string, stdout, stderr io.Writer, now func() time.Time) error {
	fs := flags("test", testSynopsis, stderr)
	path := fs.String("config", "config.yaml", "configuration `file`")
	source := fs.String("source", "", "source `name` whose normalizer reads the events (default: the only source)")
	cases := fs.String("cases", "", "run the rule test cases in `file` instead of events")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	var headers headerFlags
	fs.Var(&headers, "header", "a request `header` the events come with, as 'Name: value' (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*cases == "") == (fs.NArg() == 0) {
		fs.Usage()
		return &exitError{code: 2, msg: "test needs EVENT.json files or --cases, not both"}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return usageReport(stdout, err)
	}
	runner, closePreview, err := app.PreviewRunner(cfg)
	if err != nil {
		return usageReport(stdout, err)
	}
	defer closePreview()
	runner.Now = now

	if *cases != "" {
		suite, err := dryrun.LoadSuite(*cases)
		if err != nil {
			return usageReport(stdout, err)
		}
		report, err := runner.RunSuite(suite)
		if err != nil {
			return usageReport(stdout, err)
		}
		if *asJSON {
			err = dryrun.WriteJSON(stdout, report)
		} else {
			err = report.Write(stdout)
		}
		if err != nil {
			return err
		}
		if report.Failed > 0 {
			return &exitError{code: 1}
		}
		return nil
	}

	var results []*dryrun.Result
	rejected := 0
	for _, file := range fs.Args() {
		data, err := os.ReadFile(file)
		if err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
		bodies := dryrun.SplitBodies(data)
		for i, body := range bodies {
			name := file
			if len(bodies) > 1 {
				name = fmt.Sprintf("%s[%d]", file, i)
			}
			res, err := runner.Run(dryrun.Input{Name: name, Source: *source, Body: body, Header: headers.h})
			if err != nil {
				return &exitError{code: 2, msg: err.Error()}
			}
			if res.Rejected != "" {
				rejected++
			}
			results = append(results, res)
		}
	}
	if *asJSON {
		err = dryrun.WriteJSON(stdout, results)
	} else {
		err = dryrun.WriteText(stdout, results)
	}
	if err != nil {
		return err
	}
	if rejected > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d of %d events would be rejected", rejected, len(results))}
	}
	return nil
}

// usageReport prints positioned problems (of the configuration or of a
// cases file) and exits 2: the test could not run.
func usageReport(w io.Writer, err error) error {
	var cerr *config.Error
	if !errors.As(err, &cerr) {
		return &exitError{code: 2, msg: err.Error()}
	}
	for _, p := range cerr.Problems {
		fmt.Fprintln(w, p.String())
	}
	return &exitError{code: 2, msg: fmt.Sprintf("%d problem(s) in %s", len(cerr.Problems), cerr.Problems[0].File)}
}

// headerFlags collects --header 'Name: value' flags.
type headerFlags struct{ h http.Header }

func (f *headerFlags) String() string { return "" }

func (f *headerFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return errors.New("want 'Name: value'")
	}
	if f.h == nil {
		f.h = http.Header{}
	}
	f.h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}
