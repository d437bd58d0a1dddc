// Command go-template-ref renders text/template + Sprig cases exactly as Bitnami sealed-secrets does, as the
// reference for arcseal-template's differential suite (template/tests/record-go.sh).
//
// Input: JSONL on stdin, one case per line: {"name": "...", "template": "...", "data": {"item": "<base64>"}}.
// Output: JSONL on stdout, one result per case in order: {"ok": "<base64 output>"} or {"error": true, "stage":
// "parse"|"exec"}. Error texts are not recorded: the Rust engine words errors its own way and never echoes values.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"text/template"

	"github.com/Masterminds/sprig"
)

type testCase struct {
	Name     string            `json:"name"`
	Template string            `json:"template"`
	Data     map[string]string `json:"data"`
}

type result struct {
	Ok    *string `json:"ok,omitempty"`
	Error bool    `json:"error,omitempty"`
	Stage string  `json:"stage,omitempty"`
}

// funcMap is sealed-secrets' own: Sprig's GenericFuncMap minus the functions that read the controller's host.
func funcMap() template.FuncMap {
	fm := sprig.GenericFuncMap()
	delete(fm, "env")
	delete(fm, "expandenv")
	delete(fm, "getHostByName")
	return fm
}

func render(c testCase) result {
	data := map[string]string{}
	for k, v := range c.Data {
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			panic(err)
		}
		data[k] = string(raw)
	}
	tmpl, err := template.New(c.Name).Funcs(funcMap()).Parse(c.Template)
	if err != nil {
		return result{Error: true, Stage: "parse"}
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return result{Error: true, Stage: "exec"}
	}
	out := base64.StdEncoding.EncodeToString(buf.Bytes())
	return result{Ok: &out}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var c testCase
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			panic(err)
		}
		if err := enc.Encode(render(c)); err != nil {
			panic(err)
		}
	}
	if err := in.Err(); err != nil {
		panic(err)
	}
}
