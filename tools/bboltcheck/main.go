// bboltcheck opens a bbolt file with go.etcd.io/bbolt (Debian's package, built offline like
// tools/etcdload) to check cairn's bbolt reader and writer against the real implementation.
//
//	bboltcheck dump FILE    tx.Check(), then the buckets as JSON on stdout; exit 1 on check errors
//	bboltcheck write FILE   create FILE from JSON on stdin (the dump format) through bbolt's own
//	                        Put/CreateBucket, in many small transactions with deletes in between,
//	                        so the file has branch, overflow and free pages as a live etcd db does
//
// JSON: {"size": N, "buckets": [{"name": hex, "keys": [[hex, hex], ...], "buckets": [...]}]}
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

type bucketJSON struct {
	Name    string       `json:"name"`
	Keys    [][2]string  `json:"keys"`
	Buckets []bucketJSON `json:"buckets"`
}

type fileJSON struct {
	Size    int64        `json:"size"`
	Buckets []bucketJSON `json:"buckets"`
}

func dumpBucket(name []byte, b *bolt.Bucket) bucketJSON {
	out := bucketJSON{Name: hex.EncodeToString(name), Keys: [][2]string{}, Buckets: []bucketJSON{}}
	_ = b.ForEach(func(k, v []byte) error {
		if v == nil {
			if child := b.Bucket(k); child != nil {
				out.Buckets = append(out.Buckets, dumpBucket(k, child))
				return nil
			}
		}
		out.Keys = append(out.Keys, [2]string{hex.EncodeToString(k), hex.EncodeToString(v)})
		return nil
	})
	return out
}

func dump(path string) int {
	db, err := bolt.Open(path, 0400, &bolt.Options{ReadOnly: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	defer db.Close()
	code := 0
	_ = db.View(func(tx *bolt.Tx) error {
		for cerr := range tx.Check() {
			fmt.Fprintln(os.Stderr, "check:", cerr)
			code = 1
		}
		out := fileJSON{Size: tx.Size(), Buckets: []bucketJSON{}}
		_ = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			out.Buckets = append(out.Buckets, dumpBucket(name, b))
			return nil
		})
		enc := json.NewEncoder(os.Stdout)
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(os.Stderr, "encode:", err)
			code = 2
		}
		return nil
	})
	return code
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// fill writes one bucket's keys, each in its own small batch of transactions, and a throwaway key
// per batch that is deleted again, so the file ends with free pages.
func fill(db *bolt.DB, path [][]byte, bj bucketJSON) error {
	bucketAt := func(tx *bolt.Tx) (*bolt.Bucket, error) {
		b, err := tx.CreateBucketIfNotExists(path[0])
		for _, p := range path[1:] {
			if err != nil {
				return nil, err
			}
			b, err = b.CreateBucketIfNotExists(p)
		}
		return b, err
	}
	const perTx = 50
	for i := 0; i <= len(bj.Keys); i += perTx {
		end := i + perTx
		if end > len(bj.Keys) {
			end = len(bj.Keys)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := bucketAt(tx)
			if err != nil {
				return err
			}
			for _, kv := range bj.Keys[i:end] {
				if err := b.Put(mustHex(kv[0]), mustHex(kv[1])); err != nil {
					return err
				}
			}
			return b.Put([]byte("\xff\xffbboltcheck-scratch"), make([]byte, 3000))
		}); err != nil {
			return err
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := bucketAt(tx)
			if err != nil {
				return err
			}
			return b.Delete([]byte("\xff\xffbboltcheck-scratch"))
		}); err != nil {
			return err
		}
	}
	for _, child := range bj.Buckets {
		if err := fill(db, append(append([][]byte{}, path...), mustHex(child.Name)), child); err != nil {
			return err
		}
	}
	return nil
}

func write(path string) int {
	var in fileJSON
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "decode:", err)
		return 2
	}
	db, err := bolt.Open(path, 0600, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	defer db.Close()
	// A test fixture: no fsync per transaction (the layout is the same).
	db.NoSync = true
	for _, b := range in.Buckets {
		if err := fill(db, [][]byte{mustHex(b.Name)}, b); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			return 2
		}
	}
	return 0
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: bboltcheck dump|write FILE")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "dump":
		os.Exit(dump(os.Args[2]))
	case "write":
		os.Exit(write(os.Args[2]))
	}
	fmt.Fprintln(os.Stderr, "usage: bboltcheck dump|write FILE")
	os.Exit(2)
}
