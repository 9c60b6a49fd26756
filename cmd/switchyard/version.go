package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/switchyard/switchyard/app"
)

func versionString() string {
	v := app.Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return fmt.Sprintf("switchyard %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
