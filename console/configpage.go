package console

import (
	"errors"
	"net/http"

	"github.com/switchyard/switchyard/config"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

type configView struct {
	*base
	File     string
	YAML     string
	Error    string
	Reload   ReloadStatus
	Reloaded bool
}

func (c *Console) configPage(w http.ResponseWriter, r *http.Request, v *base) {
	v.Title = "Configuration"
	view := &configView{base: v}
	if c.opts.Config != nil {
		cfg := c.opts.Config()
		view.File = cfg.File()
		out, err := cfg.Redacted()
		if err != nil {
			view.Error = err.Error()
		}
		view.YAML = string(out)
	}
	if c.opts.LastReload != nil {
		view.Reload, view.Reloaded = c.opts.LastReload()
	}
	c.render(w, r, http.StatusOK, "config", view)
}

// reload reloads the configuration file; the page shows the outcome
// (the gateway records it for LastReload).
func (c *Console) reload(w http.ResponseWriter, r *http.Request, v *base) {
	if c.opts.Reloader == nil {
		c.fail(w, r, v, http.StatusNotImplemented, "Reload is not available here.")
		return
	}
	_, err := c.opts.Reloader.Reload(r.Context())
	var cerr *config.Error
	if err != nil && !errors.As(err, &cerr) {
		c.log.Warn("reload from the console failed", "err", err)
	}
	http.Redirect(w, r, "/ui/config", http.StatusSeeOther)
}
