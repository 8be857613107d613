// Command zipdir writes a directory to a zip archive: the Windows release
// archives (release.sh), without zip(1), which this project does not
// install. Entries are the directory's files under its base name, in name
// order, dated SOURCE_DATE_EPOCH (else now), so one commit's archive has
// the same bytes whoever builds it; files executable by their owner keep
// mode 0755, the rest get 0644.
//
//	go run ./packaging/zipdir OUT.zip DIR
package main

import (
	"archive/zip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: zipdir OUT.zip DIR")
		os.Exit(2)
	}
	date := time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "zipdir: SOURCE_DATE_EPOCH=%q: %v\n", s, err)
			os.Exit(2)
		}
		date = time.Unix(sec, 0)
	}
	if err := write(os.Args[1], os.Args[2], date); err != nil {
		fmt.Fprintln(os.Stderr, "zipdir:", err)
		os.Exit(1)
	}
}

// write makes out from the regular files of dir (not its subdirectories:
// a release archive has none).
func write(out, dir string, date time.Time) (err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", filepath.Join(dir, e.Name()))
		}
		names = append(names, e.Name())
	}
	slices.Sort(names)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(out) // half an archive is none
		}
	}()
	zw := zip.NewWriter(f)
	base := filepath.Base(filepath.Clean(dir))
	for _, name := range names {
		if err := add(zw, filepath.Join(dir, name), base+"/"+name, date); err != nil {
			return err
		}
	}
	return zw.Close()
}

func add(zw *zip.Writer, path, name string, date time.Time) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close() // read-only
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if fi.Mode().Perm()&0o100 != 0 {
		mode = 0o755
	}
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: date.UTC()}
	h.SetMode(mode)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, src); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
