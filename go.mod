module thunder

go 1.26.8

require (
	github.com/fsnotify/fsnotify v1.10.1
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.49.0
	google.golang.org/protobuf v1.36.12
)

require golang.org/x/sync v0.24.0 // indirect
