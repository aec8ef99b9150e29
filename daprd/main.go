// Command daprd is the unmodified Dapr runtime sidecar, built from the Go
// module proxy so that machines without the Dapr CLI can run the service.
//
// Build it with the stable component registry compiled in:
//
//	go build -tags stablecomponents -o daprd .
package main

import "github.com/dapr/dapr/cmd/daprd/app"

func main() {
	app.Run()
}
