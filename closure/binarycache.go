package closure

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/ulikunitz/xz"
)

// maxNarinfo bounds the size of a narinfo or nix-cache-info document.
const maxNarinfo = 1 << 20

// BinaryCache is the Source of a Nix binary cache: a file:// directory (as
// written by `nix copy --to file://DIR`) or an http(s):// URL (as served by
// any Nix binary cache, including NewCacheHandler). Path infos come from
// <hash>.narinfo files, NARs from their URL, decompressed (xz, zstd, bzip2,
// gzip or none). When a narinfo gives FileHash/FileSize, the compressed file
// is checked against them too.
//
// Signatures in narinfos are kept in the records but not checked: what is
// trusted is the narHash, which Import checks against the NAR bytes.
type BinaryCache struct {
	base   *url.URL
	client *http.Client
	dir    string

	mu    sync.Mutex
	infos map[string]*narinfo.NarInfo // by absolute store path
}

// NewBinaryCache opens the binary cache at rawURL (file:///dir or
// http://host/path). client may be nil (http.DefaultClient). It reads
// nix-cache-info to learn the cache's store dir.
func NewBinaryCache(ctx context.Context, rawURL string, client *http.Client) (*BinaryCache, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("binary cache URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file", "http", "https":
	default:
		return nil, fmt.Errorf("binary cache URL %q: scheme %q not supported (want file, http or https)", rawURL, u.Scheme)
	}
	u.RawQuery, u.Fragment = "", ""
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if client == nil {
		client = http.DefaultClient
	}
	bc := &BinaryCache{base: u, client: client, dir: DefaultStoreDir, infos: map[string]*narinfo.NarInfo{}}
	rc, err := bc.open(ctx, "nix-cache-info")
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	sc := bufio.NewScanner(io.LimitReader(rc, maxNarinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "StoreDir" {
			bc.dir = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: nix-cache-info: %v", ErrSourceFailed, bc.base.Redacted(), err)
	}
	return bc, nil
}

// StoreDir implements Source.
func (bc *BinaryCache) StoreDir() string { return bc.dir }

// open opens rel (a path relative to the cache root).
func (bc *BinaryCache) open(ctx context.Context, rel string) (io.ReadCloser, error) {
	ref, err := url.Parse(rel)
	if err != nil || ref.IsAbs() || ref.Host != "" || strings.HasPrefix(rel, "/") || strings.Contains(rel, "..") {
		return nil, fmt.Errorf("%w: %s: bad relative URL %q", ErrSourceFailed, bc.base.Redacted(), rel)
	}
	u := bc.base.ResolveReference(ref)
	if u.Scheme == "file" {
		f, err := os.Open(filepath.FromSlash(u.Path))
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, u.Redacted())
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSourceFailed, err)
		}
		return f, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := bc.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSourceFailed, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return resp.Body, nil
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s (404)", ErrNotFound, u.Redacted())
	default:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: GET %s: %s", ErrSourceFailed, u.Redacted(), resp.Status)
	}
}

// Narinfo fetches and parses the narinfo of the store path p.
func (bc *BinaryCache) Narinfo(ctx context.Context, p string) (*narinfo.NarInfo, error) {
	if err := checkStorePath(p, bc.dir, ""); err != nil {
		return nil, err
	}
	name := hashPart(p) + ".narinfo"
	rc, err := bc.open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	ni, err := ParseNarinfo(io.LimitReader(rc, maxNarinfo), bc.dir)
	if err != nil {
		var pe *PathInfoError
		if errorsAs(err, &pe) {
			pe.Source = "narinfo " + name
		}
		return nil, err
	}
	if ni.StorePath != p {
		return nil, &PathInfoError{Source: "narinfo " + name, Path: p, Reason: fmt.Sprintf("StorePath is %s", ni.StorePath)}
	}
	return ni, nil
}

// ParseNarinfo parses a narinfo with go-nix and checks it: StorePath,
// References and Deriver are valid store paths in storeDir, NarHash is a
// sha256, NarSize and URL are present and the compression is one this package
// can read. Errors are *PathInfoError (ErrBadPathInfo) or *StoreDirError.
func ParseNarinfo(r io.Reader, storeDir string) (*narinfo.NarInfo, error) {
	if storeDir == "" {
		storeDir = DefaultStoreDir
	}
	bad := func(path, reason string, err error) error {
		return &PathInfoError{Source: "narinfo", Path: path, Reason: reason, Err: err}
	}
	ni, err := narinfo.Parse(r)
	if err != nil {
		return nil, bad("", "malformed", err)
	}
	if err := checkStorePath(ni.StorePath, storeDir, ""); err != nil {
		return nil, err
	}
	if ni.NarHash == nil {
		return nil, bad(ni.StorePath, "no NarHash", nil)
	}
	if ni.NarHash.Algo() != nixhash.SHA256 {
		return nil, bad(ni.StorePath, fmt.Sprintf("NarHash algorithm %s, want sha256", ni.NarHash.Algo()), nil)
	}
	if ni.NarSize == 0 || ni.NarSize > 1<<62 {
		return nil, bad(ni.StorePath, "missing or invalid NarSize", nil)
	}
	if ni.URL == "" {
		return nil, bad(ni.StorePath, "no URL", nil)
	}
	if _, err := decompressor(ni.Compression); err != nil {
		return nil, bad(ni.StorePath, err.Error(), nil)
	}
	for _, ref := range ni.References {
		if strings.Contains(ref, "/") {
			return nil, &StoreDirError{Path: ref, Referrer: ni.StorePath, StoreDir: storeDir}
		}
		if err := checkStorePath(storeDir+"/"+ref, storeDir, ni.StorePath); err != nil {
			return nil, err
		}
	}
	if ni.Deriver != "" {
		if err := checkStorePath(storeDir+"/"+ni.Deriver, storeDir, ni.StorePath); err != nil {
			return nil, err
		}
	}
	if err := ni.Check(); err != nil && storeDir == DefaultStoreDir {
		return nil, bad(ni.StorePath, "inconsistent", err)
	}
	return ni, nil
}

// narinfoPathInfo converts a checked narinfo.
func narinfoPathInfo(ni *narinfo.NarInfo, storeDir string) (PathInfo, error) {
	pi := PathInfo{
		Path:    ni.StorePath,
		NarHash: &ni.NarHash.Hash,
		NarSize: int64(ni.NarSize),
		CA:      ni.CA,
	}
	refs := make([]string, len(ni.References))
	for i, r := range ni.References {
		refs[i] = storeDir + "/" + r
	}
	var err error
	if pi.References, err = normRefs(refs, storeDir, ni.StorePath); err != nil {
		return PathInfo{}, err
	}
	if ni.Deriver != "" {
		pi.Deriver = storeDir + "/" + ni.Deriver
	}
	for _, s := range ni.Signatures {
		pi.Signatures = append(pi.Signatures, s.String())
	}
	return pi, nil
}

// Closure implements Source: it follows References from root's narinfo.
func (bc *BinaryCache) Closure(ctx context.Context, root string) ([]PathInfo, error) {
	var out []PathInfo
	seen := map[string]bool{root: true}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		ni, err := bc.Narinfo(ctx, p)
		if err != nil {
			return nil, err
		}
		pi, err := narinfoPathInfo(ni, bc.dir)
		if err != nil {
			return nil, err
		}
		bc.mu.Lock()
		bc.infos[p] = ni
		bc.mu.Unlock()
		out = append(out, pi)
		for _, ref := range pi.References {
			if !seen[ref] {
				seen[ref] = true
				queue = append(queue, ref)
			}
		}
	}
	return out, nil
}

// NAR implements Source.
func (bc *BinaryCache) NAR(ctx context.Context, pi PathInfo) (io.ReadCloser, error) {
	bc.mu.Lock()
	ni := bc.infos[pi.Path]
	bc.mu.Unlock()
	if ni == nil {
		var err error
		if ni, err = bc.Narinfo(ctx, pi.Path); err != nil {
			return nil, err
		}
	}
	rc, err := bc.open(ctx, ni.URL)
	if err != nil {
		return nil, err
	}
	var fh hash.Hash
	var in io.Reader = rc
	cnt := &countWriter{}
	if ni.FileHash != nil && ni.FileHash.Algo() == nixhash.SHA256 {
		fh = sha256.New()
		in = io.TeeReader(rc, io.MultiWriter(fh, cnt))
	}
	dec, _ := decompressor(ni.Compression)
	r, err := dec(in)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("%w: %s: %s: %v", ErrBadNAR, pi.Path, ni.Compression, err)
	}
	return &cacheNAR{r: r, raw: rc, in: in, fh: fh, cnt: cnt, ni: ni}, nil
}

type cacheNAR struct {
	r   io.Reader
	raw io.ReadCloser
	in  io.Reader
	fh  hash.Hash
	cnt *countWriter
	ni  *narinfo.NarInfo
	eof bool
}

func (c *cacheNAR) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.eof = true
	} else if err != nil && err != io.ErrUnexpectedEOF {
		err = fmt.Errorf("%s: decompress %s: %w", c.ni.StorePath, c.ni.Compression, err)
	}
	return n, err
}

// Close checks FileHash and FileSize when the whole NAR was read.
func (c *cacheNAR) Close() error {
	defer c.raw.Close()
	if cl, ok := c.r.(io.Closer); ok {
		defer cl.Close()
	}
	if !c.eof || c.fh == nil {
		return nil
	}
	// Compressors may stop before the end of their input (padding).
	if _, err := io.Copy(io.Discard, c.in); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrSourceFailed, c.ni.URL, err)
	}
	got := FormatHash(sumHash(c.fh))
	want := c.ni.FileHash.Format(nixhash.NixBase32, true)
	if got != want || (c.ni.FileSize != 0 && uint64(c.cnt.n) != c.ni.FileSize) {
		return &HashMismatchError{StorePath: c.ni.StorePath, WantHash: want, GotHash: got, WantSize: int64(c.ni.FileSize), GotSize: c.cnt.n, CheckingFile: true}
	}
	return nil
}

// decompressor returns the reader constructor for a narinfo Compression.
func decompressor(compression string) (func(io.Reader) (io.Reader, error), error) {
	switch compression {
	case "none", "":
		return func(r io.Reader) (io.Reader, error) { return r, nil }, nil
	case "xz":
		return func(r io.Reader) (io.Reader, error) {
			return xz.NewReader(bufio.NewReaderSize(r, 64<<10))
		}, nil
	case "zstd":
		return func(r io.Reader) (io.Reader, error) {
			d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		}, nil
	case "bzip2":
		return func(r io.Reader) (io.Reader, error) { return bzip2.NewReader(bufio.NewReaderSize(r, 64<<10)), nil }, nil
	case "gzip":
		return func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }, nil
	default:
		return nil, fmt.Errorf("unsupported compression %q (want none, xz, zstd, bzip2 or gzip)", compression)
	}
}

// narURLPath is the cache-relative path of a NAR file.
func narURLPath(hash32, ext string) string { return path.Join("nar", hash32+".nar"+ext) }
