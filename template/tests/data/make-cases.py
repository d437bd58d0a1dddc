#!/usr/bin/env python3
"""Writes cases.jsonl, the differential corpus (run from this directory; then ../record-go.sh records Go's answers).

Each case: {"name", "template", "data": {item: base64}, "check"?}. "check": "shape" marks clock-dependent cases
compared by length only. Kept as a generator so that adding a function or an input is one line."""
import base64, json, re

DATA = {
    "user": b"admin",
    "password": b"s3cr3t!&<>\"'",
    "host": b"db.example.com",
    "port": b"5432",
    "empty": b"",
    "unicode": "Straße ǅ ΣΑΣ İı ﬀ ᾳ ü".encode(),
    "invalid": b"\xff\xfeab\xc3(\xe2\x82",
    "json": b'{"a":1,"b":[1,2,{"c":"x<y"}],"d":null,"e":1.5e300,"f":"\\u00e9"}',
    "multi": b"line1\nline2\n  line3",
    "num": b"42",
    "neg": b"-7",
    "float": b"3.75",
    "hex": b"0x1F",
    "b64": b"aGVsbG8gd29ybGQ=",
    "b64nl": b"aGVs\nbG8g\r\nd29y\nbGQ=",
    "spaces": b"  padded \t\n",
    "csv": b"a,b,,c",
    "ctrl": b"\x07\x08\x0c\x0b\x00\x1b\x7f",
    "nbsp": "\u00a0x\u200by\u2028".encode(),
    "emoji": "😀 ok".encode(),
    "cert": b"-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----\n",
    "true": b"true",
    "dotted.key": b"dk",
    "Upper": b"UP",
}
cases = []

BARE_DOT = re.compile(r"(?<![\w)\]])\.(?!\w)|\$(?!\w)")


def needed(t, data):
    """The items a case can reach: all of them if the template names the whole map (a bare `.` or `$`), else
    those it names as `.item` (keeps the corpus small without changing what Go sees)."""
    if BARE_DOT.search(t):
        return data
    return {k: v for k, v in data.items() if re.search(r"\." + re.escape(k) + r"(?!\w)", t)}


def add(t, data=None, check=None, name="key"):
    data = needed(t, DATA if data is None else data)
    c = {"name": name, "template": t, "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
    if check:
        c["check"] = check
    cases.append(c)

STR_ITEMS = ["user", "password", "empty", "unicode", "invalid", "multi", "spaces", "ctrl", "nbsp", "emoji", "num"]

# --- Text, actions, trim markers, comments ---
for t in [
    "", "plain text", "{{ .user }}", "{{.user}}", "a {{- .user -}} b", "a  {{- .user }}  b", "a {{ .user -}}\n\n b",
    "x \t\r\n{{- .user}}", "x\u00a0{{- .user }}", "x\v{{- .user }}", "{{ .user -}}\u00a0y", "{{- .user -}}",
    "{{/* comment */}}x", "a {{- /* c */ -}} b", "{{/* c */ .user }}", "{{ /* c */ }}", "{{/* }} */}}",
    "{{/* unclosed", "{{ .user ", "{{ .user }", "}}", "{{}}", "{{ }}", "{{-3}}", "{{- 3}}", "{{ 3 -}}",
    "{{-.user}}", "{{ .user}}{{.port }}", "{{\n.user\n}}", "{{ .user | printf \"%s\"\n}}",
    "{{ \"a\" }}{{ `b` }}{{ 'c' }}", "{{ `raw\nstring` }}", "{{ \"esc\\t\\n\\x41\\u00e9\\101\" }}", "{{ \"bad\\q\" }}",
    "{{ 'ab' }}", "{{ '\\n' }}", "{{ '\\x41' }}", "{{ 'é' }}", "{{ '\\u00e9' }}", "{{ '' }}",
    "{{ 1 }}", "{{ -1 }}", "{{ +1 }}", "{{ 0x1F }}", "{{ 0o17 }}", "{{ 017 }}", "{{ 0b101 }}", "{{ 1_000 }}",
    "{{ 1__0 }}", "{{ 0x_1F }}", "{{ 1.5 }}", "{{ 1e3 }}", "{{ 1.0 }}", "{{ .5 }}", "{{ 1e21 }}", "{{ 1e20 }}",
    "{{ 1e-5 }}", "{{ 0.0001 }}", "{{ 123456789.0 }}", "{{ 1000000.0 }}", "{{ 100000.0 }}", "{{ 0x1p4 }}",
    "{{ 9223372036854775807 }}", "{{ 9223372036854775808 }}", "{{ -9223372036854775808 }}", "{{ 18446744073709551615 }}",
    "{{ 99999999999999999999 }}", "{{ 1i }}", "{{ 08 }}", "{{ 1.5.5 }}", "{{ 1a }}", "{{ true }}", "{{ false }}",
    "{{ nil }}", "{{ . }}", "{{ .absent }}", "{{ .absent.deeper }}", "{{ .user.x }}", "{{ $ }}", "{{ $.user }}",
    "{{ $x }}", "{{ .Upper }}", "{{ index . \"dotted.key\" }}", "{{ .dotted.key }}", "{{ index . \"absent\" }}",
    "{{ (.user) }}", "{{ (.user).x }}", "{{ (index . \"user\") }}", "{{ (printf \"%s\" .user) | upper }}",
    "{{ .user | upper | lower }}", "{{ .user | .port }}", "{{ 3 | 4 }}", "{{ .user 3 }}", "{{ . 3 }}", "{{ \"a\" 3 }}",
    "{{ nosuchfunc }}", "{{ env \"HOME\" }}", "{{ expandenv \"$HOME\" }}", "{{ getHostByName \"localhost\" }}",
    "{{ ( }}", "{{ ) }}", "{{ (.user }}", "{{ .user) }}", "{{ | }}", "{{ .user | }}", "{{ @ }}", "{{ .user.. }}",
    "{{ .user= }}", "{{ true.x }}", "{{ nil.x }}", "{{ \"s\".x }}", "{{ (nil).x }}", "{{ 1.x }}",
]:
    add(t)

for t in ['{{ 1. }}', '{{ .5e3 }}', '{{ 0x1.8p1 }}', '{{ 1e+3 }}', '{{ 0b2 }}', '{{ 0o8 }}', '{{ 00 }}', '{{ -0 }}', '{{ +0x10 }}',
          '{{ 1_0.5 }}', '{{ 0_1 }}', '{{ 0x }}', '{{ 1e }}', '{{ printf "%T" \'a\' }}', '{{ printf "%T" 1.0 }}', '{{ printf "%T" 1e3 }}',
          '{{ printf "%T" 0x10 }}', '{{ printf "%T" 0x1p4 }}', '{{ printf "%T" 1e30 }}', '{{ printf "%v" 1e30 }}', '{{ printf "%T" -0.0 }}',
          '{{ printf "%v" -0.0 }}', '{{ 0x1P-2 }}', '{{ 0X1F }}', '{{ 0B11 }}', '{{ 0O7 }}', '{{ 1E3 }}', '{{ 5i }}', '{{ 0i }}',
          '{{ printf "%T" 0i }}', '{{ 1.5e-3 }}', '{{ 123_456.789_0 }}', '{{ 0x_1p4 }}', '{{ .5. }}', '{{ 1..2 }}', '{{ --1 }}',
          '{{ - 1 }}', '{{ 1 - 1 }}', '{{ 9223372036854775807.0 }}', '{{ 1e19 }}', '{{ printf "%T" 1e19 }}', '{{ \'\\\'\' }}',
          '{{ \'\\400\' }}', '{{ \'\\377\' }}', '{{ \'\\xff\' }}', '{{ \'\\U0010FFFF\' }}', '{{ \'\\U00110000\' }}', '{{ \'\\ud800\' }}',
          '{{ "\\ud800" }}', '{{ "\\U0010ffff" }}', '{{ "\\400" }}', '{{ "\\377" }}', '{{ "\\\'" }}', '{{ \'"\' }}', '{{ \'\\"\' }}',
          '{{/**/}}', '{{/* a */-}}', '{{- /* a */ -}}x', '{{ /**/ }}', '{{/* a */ }}', '{{/*a*/ -}} b', 'a {{- /*a*/}} b',
          '{{ `a\rb` }}', '{{ "a\rb" }}', '{{ .user }}{{/* \n multi \n line */}}{{ .port }}', '{{\t.user\t}}', '{{\r\n.user\r\n}}']:
    add(t)

# --- Variables ---
for t in [
    "{{ $x := .user }}{{ $x }}", "{{ $x := .user }}{{ $x = .port }}{{ $x }}", "{{ $x = 1 }}",
    "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "{{ if true }}{{ $y := 2 }}{{ end }}{{ $y }}",
    "{{ $x := 1 }}{{ $x := 2 }}{{ $x }}", "{{ $a, $b := 1 }}", "{{ $ := 1 }}{{ $ }}", "{{ $x := . }}{{ $x.user }}",
    "{{ $x := dict \"a\" 1 }}{{ $x.a }}", "{{ $x := dict \"a\" (dict \"b\" 2) }}{{ $x.a.b }}",
    "{{ with $x := .user }}{{ $x }}{{ . }}{{ end }}", "{{ ($x := 5) }}{{ $x }}", "{{ $x := 1 }}{{ $x 2 }}",
    "{{ $x.y := 1 }}", "{{ $x := .absent }}{{ $x }}", "{{ $1 := 1 }}{{ $1 }}", "{{ $_ := 3 }}{{ $_ }}",
]:
    add(t)

# --- if / else / with / range / break / continue ---
for t in [
    "{{ if .user }}yes{{ end }}", "{{ if .empty }}yes{{ else }}no{{ end }}", "{{ if .absent }}y{{ else }}n{{ end }}",
    "{{ if 0 }}y{{ else if 1 }}one{{ else }}n{{ end }}", "{{ if false }}a{{ else if false }}b{{ else }}c{{ end }}",
    "{{ if true }}a{{ else }}b{{ else }}c{{ end }}", "{{ if }}x{{ end }}", "{{ if true }}x", "{{ end }}",
    "{{ else }}", "{{ if 0.0 }}y{{ else }}n{{ end }}", "{{ if list }}y{{ else }}n{{ end }}",
    "{{ if dict }}y{{ else }}n{{ end }}", "{{ if (list 1) }}y{{ end }}", "{{ if nil }}y{{ end }}",
    "{{ with .user }}{{ . }}{{ end }}", "{{ with .empty }}{{ . }}{{ else }}none{{ end }}",
    "{{ with .absent }}x{{ else }}{{ .user }}{{ end }}", "{{ with .user }}a{{ else with .port }}b{{ end }}",
    "{{ with .user }}a{{ else if .port }}b{{ end }}", "{{ range list 1 2 3 }}{{ . }}{{ end }}",
    "{{ range $i, $v := list \"a\" \"b\" }}{{ $i }}={{ $v }};{{ end }}", "{{ range $v := list 1 2 }}{{ $v }}{{ end }}",
    "{{ range $k, $v := . }}{{ $k }},{{ end }}", "{{ range . }}[{{ . }}]{{ end }}",
    "{{ range list }}x{{ else }}empty{{ end }}", "{{ range .absent }}x{{ else }}none{{ end }}", "{{ range 3 }}{{ . }}{{ end }}",
    "{{ range .user }}{{ . }}{{ end }}", "{{ range $i, $v, $w := list 1 }}{{ end }}",
    "{{ range list 1 2 3 4 }}{{ if eq . 3 }}{{ break }}{{ end }}{{ . }}{{ end }}",
    "{{ range list 1 2 3 4 }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ . }}{{ end }}", "{{ break }}", "{{ continue }}",
    "{{ range list 1 }}{{ else }}{{ break }}{{ end }}", "{{ range $i, $e := until 3 }}{{ $i }}{{ $e }}{{ end }}",
    "{{ range $k, $v := dict \"b\" 2 \"a\" 1 \"c\" 3 }}{{ $k }}{{ $v }}{{ end }}",
    "{{ range $k, $v := dict \"B\" 1 \"a\" 2 \"_\" 3 \"é\" 4 \"1\" 5 }}{{ $k }}{{ end }}",
    "{{ range splitList \",\" .csv }}<{{ . }}>{{ end }}", "{{ range $x := list 1 }}{{ end }}{{ $x }}",
    "{{ range list (list 1 2) (list 3) }}{{ range . }}{{ . }}{{ end }};{{ end }}",
    "{{ range $i, $_ := list 1 2 }}{{ $i }}{{ end }}", "{{ range $.absent }}x{{ end }}",
    "{{ with $x := dict \"a\" 1 }}{{ $x.a }}{{ end }}", "{{ if and .user .port }}both{{ end }}",
    "{{ if or .empty .absent }}y{{ else }}n{{ end }}", "{{ if not .user }}y{{ else }}n{{ end }}",
    "{{ if not .empty }}y{{ end }}", "{{ if not .absent }}y{{ end }}", "{{ and 1 0 2 }}", "{{ or 0 \"\" 3 }}",
    "{{ and }}", "{{ or 0 }}", "{{ and 1 2 }}", "{{ or \"\" .absent }}", "{{ .user | and 1 }}", "{{ 0 | or 0 }}",
    "{{ and .absent 1 }}", "{{ not }}", "{{ not 1 2 }}",
]:
    add(t)

# --- define / template / block ---
for t in [
    '{{ define "a" }}A{{ . }}{{ end }}{{ template "a" .user }}', '{{ define "a" }}A{{ end }}{{ template "a" }}',
    '{{ template "missing" }}', '{{ define "a" }}{{ $ }}{{ end }}{{ template "a" 5 }}',
    '{{ block "b" .port }}[{{ . }}]{{ end }}', '{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}{{ template "a" }}',
    '{{ define "a" }}1{{ end }}{{ define "a" }} {{ end }}{{ template "a" }}',
    '{{ define "key" }}inner{{ end }}', '{{ define "key" }}inner{{ end }}outer',
    '{{ define "r" }}{{ if . }}{{ . }}{{ template "r" (rest .) }}{{ end }}{{ end }}{{ template "r" (list 1 2 3) }}',
    '{{ define "loop" }}{{ template "loop" }}{{ end }}{{ template "loop" }}', '{{ template "key" }}',
    '{{ define "a" }}{{ end }}', '{{ define }}{{ end }}', '{{ define "a" }}', '{{ define "a" }}{{ else }}{{ end }}',
    '{{ if true }}{{ define "a" }}{{ end }}{{ end }}', '{{ template .user }}', '{{ template "a" 1 2 }}',
    '{{ define "a" }}{{ $x }}{{ end }}{{ $x := 1 }}{{ template "a" }}', '{{ define `a` }}raw{{ end }}{{ template `a` }}',
    '{{ define "a" }}{{ break }}{{ end }}', '{{ $x := 1 }}{{ block "b" . }}{{ $x }}{{ end }}',
]:
    add(t)

# --- Go builtins ---
for t in [
    '{{ len .user }}', '{{ len . }}', '{{ len .absent }}', '{{ len 3 }}', '{{ len .unicode }}', '{{ len (list 1 2) }}',
    '{{ index .user 0 }}', '{{ index .user 99 }}', '{{ index .user -1 }}', '{{ index (list 1 2) 1 }}', '{{ index (list 1 2) 2 }}',
    '{{ index . "user" }}', '{{ index . 1 }}', '{{ index (dict "a" (list 5 6)) "a" 1 }}', '{{ index .absent 0 }}',
    '{{ index (dict) "x" }}', '{{ index (dict "a" 1) "b" }}', '{{ index . }}', '{{ index 5 1 }}', '{{ index .user "a" }}',
    '{{ slice .user 1 3 }}', '{{ slice (list 1 2 3) 1 }}', '{{ slice (list 1 2 3) 1 2 }}', '{{ slice (list 1 2 3) 2 1 }}',
    '{{ slice (list 1 2 3) 1 9 }}', '{{ slice (list 1 2 3) }}', '{{ print }}', '{{ print .user .port }}',
    '{{ print 1 2 }}', '{{ print 1 "a" 2 }}', '{{ print .absent }}', '{{ print nil }}', '{{ print (list 1 "a") }}',
    '{{ print (dict "a" 1 "b" (list 2)) }}', '{{ println .user 1 }}', '{{ println }}', '{{ print 1.5 2.0 }}',
    '{{ html .password }}', '{{ html "\\x00" }}', '{{ html 1 2 }}', '{{ js .password }}', '{{ js .ctrl }}', '{{ js .nbsp }}',
    '{{ js .unicode }}', '{{ js "a=b" }}', '{{ urlquery .password }}', '{{ urlquery .unicode " /?" }}', '{{ urlquery .absent }}',
    '{{ call .user }}', '{{ call }}', '{{ eq 1 1 }}', '{{ eq .user "admin" }}', '{{ eq .user "x" "admin" }}', '{{ eq 1 }}',
    '{{ eq 1 1.0 }}', '{{ eq 1 "1" }}', '{{ eq .absent "x" }}', '{{ eq "a" .absent }}', '{{ eq (list) (list) }}',
    '{{ eq true true }}', '{{ eq 1.5 1.5 }}', '{{ eq (add 1 1) 2 }}', '{{ ne 1 2 }}', '{{ ne "a" "a" }}', '{{ ne 1 }}',
    '{{ lt 1 2 }}', '{{ lt "b" "a" }}', '{{ lt 1.5 2.5 }}', '{{ lt true false }}', '{{ lt 1 2.0 }}', '{{ le 2 2 }}',
    '{{ gt 3 2 }}', '{{ ge 1 2 }}', '{{ ge "a" "a" }}', '{{ gt (list) 1 }}', '{{ lt .port "6000" }}', '{{ eq nil nil }}',
    '{{ eq . . }}', '{{ lt (len .user) 10 }}', '{{ eq (index .user 0) 97 }}', '{{ eq .port 5432 }}',
]:
    add(t)

# --- printf ---
FMTS = ["%s", "%v", "%d", "%q", "%x", "%X", "% x", "%#x", "%5s", "%-5s|", "%.2s", "%05s", "%5.1s", "%t", "%c", "%U",
        "%#U", "%o", "%O", "%b", "%e", "%E", "%f", "%.2f", "%8.3f", "%-8.3f|", "%+d", "% d", "%08d", "%-08d|", "%+.3e",
        "%g", "%G", "%.3g", "%T", "%#v", "%+v", "%%", "%", "%!", "%z", "%s %s", "%[1]s", "%*d", "%.*f", "%-10s|", "%10.4v",
        "%#q", "%+q", "%x %X", "%6.2f%%", "%.0f", "%.1f", "%5t", "%w", "%#o", "%#b", "% 5d", "%.3d", "%.0d", "%3c", "%-4q|"]
ARGS = ['.user', '.unicode', '.invalid', '.empty', '.absent', '5', '-42', '1.5', '-0.000012345', '1e21', 'true', 'nil',
        '(list 1 "a")', '(dict "k" 1)', '(add 1 2)', '.ctrl', '.nbsp', '(list)', "'x'", '255', '0', '123456789.0']
for f in FMTS:
    for a in ARGS[:8]:
        add('{{ printf "%s" %s }}' % (f, a))
for a in ARGS[8:]:
    for f in ["%s", "%v", "%d", "%q", "%x", "%6.2f", "%g", "%e", "%T", "%#v"]:
        add('{{ printf "%s" %s }}' % (f, a))
for t in ['{{ printf "%s" }}', '{{ printf "%s %d" .user }}', '{{ printf "x" .user }}', '{{ printf "%s" .user 1 nil }}',
          '{{ printf "%d %d" 1 }}', '{{ printf }}', '{{ printf 1 }}', '{{ printf .user }}', '{{ .user | printf "<%s>" }}',
          '{{ printf "%s:%s@%s:%s" .user .password .host .port }}', '{{ printf "%v" .absent }}', '{{ printf "%s" . }}',
          '{{ printf "%d" .port }}', '{{ printf "%5d|%-5d|" 42 42 }}', '{{ printf "%x" (list 10 "a") }}',
          '{{ printf "%s" (list 1 nil) }}', '{{ printf "%v" (dict "a" nil) }}', '{{ printf "%*d" "x" 5 }}',
          '{{ printf "%.*s" 2 .user }}', '{{ printf "%-*d|" 4 7 }}', '{{ printf "%.*d" -1 7 }}', '{{ printf "%c" 128512 }}',
          '{{ printf "%c" -1 }}', '{{ printf "%q" 128512 }}', '{{ printf "%U" -1 }}', '{{ printf "%e" 0.0 }}',
          '{{ printf "%g" 100000.0 }}', '{{ printf "%g" 1000000.0 }}', '{{ printf "%v" 1e-4 }}', '{{ printf "%v" 1e-5 }}',
          '{{ printf "%.3g" 1234.5678 }}', '{{ printf "%.10g" 0.1 }}', '{{ printf "%f" 1e20 }}', '{{ printf "%.2f" 0.125 }}',
          '{{ printf "%.2f" 0.375 }}', '{{ printf "%.0f" 2.5 }}', '{{ printf "%5.2f|%-7.2f|%07.2f" 3.14159 2.5 -1.5 }}',
          '{{ printf "%+.2e" 12345.678 }}', '{{ printf "%x" 3.5 }}', '{{ printf "%d" true }}', '{{ printf "%s" true }}',
          '{{ printf "%08.3f" -3.5 }}', '{{ printf "% .2f" 2.0 }}', '{{ printf "%+v" 5 }}', '{{ printf "%#x" .user }}',
          '{{ printf "%# x" .user }}', '{{ printf "%.3x" .user }}', '{{ printf "%10x|" .user }}', '{{ printf "%-10X|" .user }}',
          '{{ printf "%x" .empty }}', '{{ printf "%5x|" .empty }}', '{{ printf "%q" .invalid }}', '{{ printf "%+q" .unicode }}',
          '{{ printf "%#q" .multi }}', '{{ printf "%#q" .user }}', '{{ printf "%s" 1 2 3 }}', '{{ printf "%v %v" (list) (dict) }}',
          '{{ printf "%d" (list 1 2) }}', '{{ printf "%d" (dict "a" 1) }}', '{{ printf "%s" (dict "a" 1) }}',
          '{{ printf "%05d" -42 }}', '{{ printf "%x" -255 }}', '{{ printf "%#o" 8 }}', '{{ printf "%O" -8 }}',
          '{{ printf "%6.3v" 3.14159 }}', '{{ printf "%v" 100000000.0 }}', '{{ printf "%v" 0.1 }}', '{{ printf "%v" 2.5e-7 }}',
          '{{ printf "%.1e" 9.96 }}', '{{ printf "%.2g" 9.96 }}', '{{ printf "%g" 1e100 }}', '{{ printf "%G" 1e-10 }}',
          '{{ printf "%v" (float64 "NaN") }}', '{{ printf "%[2]s %[1]s" "a" "b" }}', '{{ printf "%[1]s:%[1]s" .user }}',
          '{{ printf "%[3]s" "a" }}', '{{ printf "%[0]s" "a" }}', '{{ printf "%[x]s" "a" }}', '{{ printf "%[1]" "a" }}',
          '{{ printf "%[" "a" }}', '{{ printf "%[1]*d" 5 3 }}', '{{ printf "%[2]*[1]d" 12 5 }}', '{{ printf "%[1]2d" 5 }}',
          '{{ printf "%[1].2f" 5.0 }}', '{{ printf "%.[2]*[1]f" 3.14159 2 }}', '{{ printf "%[2]d %d" 1 2 3 }}', '{{ printf "%d %d %[1]d %d" 1 2 }}',
          '{{ printf "%5." 5 }}', '{{ printf "%." 5 }}', '{{ printf "%.f" 2.5 }}', '{{ printf "%1000001d" 1 | len }}',
          '{{ printf "%10000000d" 1 }}', '{{ printf "%[99999999999999999999]d" 1 }}', '{{ printf "%-[1]5d|" 7 }}', '{{ printf "%T" (splitList "," "a") }}', '{{ printf "%T" (until 2) }}']:
    add(t)

# --- Sprig: strings ---
ONE_STR = ["upper", "lower", "title", "trim", "nospace", "sha1sum", "sha256sum", "adler32sum", "b64enc", "b64dec",
           "b32enc", "quote", "squote", "toString", "atoi", "untitle", "initials", "swapcase", "snakecase", "camelcase",
           "kebabcase", "b32dec", "base", "dir", "clean", "ext", "isAbs", "regexQuoteMeta", "len", "int", "int64",
           "float64", "toStrings", "typeOf", "kindOf", "empty", "toJson", "toRawJson", "toPrettyJson", "html", "js", "urlquery"]
for f in ONE_STR:
    for item in STR_ITEMS:
        add('{{ .%s | %s }}' % (item, f))
for f in ONE_STR:
    add('{{ %s .absent }}' % f)
    add('{{ %s 5 }}' % f)
    add('{{ %s (list "a" 1) }}' % f)
for t in [
    '{{ "ǆemo ﬀ ᾳ ß ΐ" | upper }}', '{{ "İSTANBUL ΣΑΣ ẞ Ω K" | lower }}', '{{ "hello wORLD_x-y z1a éb" | title }}',
    '{{ "ǆ ǉ ǌ ǳ ᾳ ﬀ" | title }}', '{{ "a\u00a0b\u2003c" | title }}', '{{ "\u00a0\u2003 x \u0085" | trim }}',
    '{{ "\u00a0a b\u0085c\u2003" | nospace }}', '{{ trimAll "ab" "abxba" }}', '{{ trimall "ß" "ßxß" }}', '{{ trimAll "" "x" }}',
    '{{ trimAll "é" .unicode }}', '{{ trimPrefix "ad" .user }}', '{{ trimSuffix "in" .user }}', '{{ trimSuffix "" .user }}',
    '{{ trunc 3 .user }}', '{{ trunc -2 .user }}', '{{ trunc 99 .user }}', '{{ trunc -99 .user }}', '{{ trunc 0 .user }}',
    '{{ trunc 2 .unicode }}', '{{ substr 1 3 .user }}', '{{ substr -1 3 .user }}', '{{ substr 2 -1 .user }}',
    '{{ substr 3 1 .user }}', '{{ substr 9 99 .user }}', '{{ substr 0 99 .user }}', '{{ substr -1 99 .user }}',
    '{{ substr 1 2 .unicode }}', '{{ repeat 3 .user }}', '{{ repeat 0 .user }}', '{{ repeat -1 .user }}',
    '{{ repeat 3 "é" }}', '{{ contains "dm" .user }}', '{{ contains "" .user }}', '{{ hasPrefix "ad" .user }}',
    '{{ hasSuffix "min" .user }}', '{{ hasPrefix "x" .empty }}', '{{ indent 4 .multi }}', '{{ nindent 2 .multi }}',
    '{{ indent 0 .multi }}', '{{ indent -1 .multi }}', '{{ indent 2 .empty }}', '{{ nindent 4 .cert }}',
    '{{ replace "a" "b" .user }}', '{{ replace "" "-" .user }}', '{{ replace "" "-" .invalid }}', '{{ replace "x" "" .user }}',
    '{{ .user | replace "d" "D" }}', '{{ replace "\\n" "\\\\n" .multi }}', '{{ plural "one" "many" 1 }}',
    '{{ plural "one" "many" 2 }}', '{{ plural "one" "many" (len .user) }}', '{{ quote .user .port }}', '{{ quote .absent }}',
    '{{ quote 1 nil "a" }}', '{{ quote }}', '{{ squote .user 5 }}', '{{ squote .absent .user }}', '{{ quote (list 1 2) }}',
    '{{ quote .ctrl }}', '{{ quote .nbsp }}', '{{ quote .invalid }}', '{{ quote 1.5 true }}', '{{ cat .user .port }}',
    '{{ cat "a" nil "b" 1 }}', '{{ cat }}', '{{ cat .absent }}', '{{ cat (list 1) 2.5 }}', '{{ toString 5 }}',
    '{{ toString 1.5 }}', '{{ toString (list "a") }}', '{{ toString nil }}', '{{ toString true }}', '{{ atoi "12" }}',
    '{{ atoi "-12" }}', '{{ atoi "+12" }}', '{{ atoi "1.5" }}', '{{ atoi " 1" }}', '{{ atoi "0x10" }}', '{{ atoi "" }}',
    '{{ atoi "99999999999999999999" }}', '{{ int "12" }}', '{{ int "0x1F" }}', '{{ int "012" }}', '{{ int "1_000" }}',
    '{{ int "0x_1F" }}', '{{ int "12.00" }}', '{{ int "12.50" }}', '{{ int "abc" }}', '{{ int 3.9 }}', '{{ int -3.9 }}',
    '{{ int true }}', '{{ int nil }}', '{{ int64 "42" }}', '{{ int64 .neg }}', '{{ float64 "1.5" }}', '{{ float64 "1e3" }}',
    '{{ float64 "x" }}', '{{ float64 5 }}', '{{ float64 true }}', '{{ split "," .csv }}', '{{ (split "," .csv)._1 }}',
    '{{ splitList "," .csv }}', '{{ splitList "" "abc" }}', '{{ splitList "," "" }}', '{{ splitn "," 2 .csv }}',
    '{{ splitn "," 0 .csv }}', '{{ splitn "," -1 .csv }}', '{{ (splitn ":" 2 "a:b:c")._1 }}', '{{ join "," (list 1 "a" nil 2.5) }}',
    '{{ join "-" (splitList "," .csv) }}', '{{ join "," .user }}', '{{ join "," nil }}', '{{ join "," 5 }}',
    '{{ sortAlpha (list "b" "a" "C" 1) }}', '{{ sortAlpha "x" }}', '{{ sortAlpha (splitList "," "z,é,a,B") }}',
    '{{ toStrings (list 1 "a" nil) }}', '{{ toStrings "x" }}', '{{ hello }}', '{{ b64dec "!!!" }}', '{{ b64dec "aGVsbG8" }}',
    '{{ b64dec "aGVsbG8==" }}', '{{ b64dec "aGVsbA==" }}', '{{ b64dec "aGVsbA=" }}', '{{ b64dec "aGVsbG9=" }}',
    '{{ b64dec "aG Vs" }}', '{{ b64dec "a" }}', '{{ b64dec "aGVs\\nbG8=" }}', '{{ b64dec "=" }}', '{{ b64dec "aGVsbG8=x" }}',
    '{{ b64dec "aGVsbG8=\\n" }}', '{{ b64dec "aGVsbA=\\n=" }}', '{{ b64dec "aGVsbA==" | b64enc }}', '{{ b64dec "" }}',
    '{{ .b64nl | b64dec }}', '{{ b32enc "" }}', '{{ b32enc "f" }}', '{{ b32enc "fo" }}', '{{ b32enc "foo" }}',
    '{{ b32enc "foob" }}', '{{ b32dec "MZXW6YTBOI======" }}', '{{ b32dec "MZXW6YQ=" }}', '{{ b32dec "MZXW6===" }}', '{{ b32dec "MZXQ====" }}',
    '{{ b32dec "MY======" }}', '{{ b32dec "" }}', '{{ b32dec "MZXW6YTBOI" }}', '{{ b32dec "MZXW6YTB" }}', '{{ b32dec "M=======" }}',
    '{{ b32dec "MZX=====" }}', '{{ b32dec "MZXW6Y==" }}', '{{ b32dec "MY======MZXW6===" }}', '{{ b32dec "MY=====" }}', '{{ b32dec "MY==x===" }}',
    '{{ b32dec "mzxw6===" }}', '{{ b32dec "MZ\\nXW\\r\\n6===" }}', '{{ b32dec "MZXW6=== " }}', '{{ b32dec "1ZXW6===" }}', '{{ b32dec "MZXW6YTBOI======X" }}',
    '{{ b32dec "========" }}', '{{ b32dec "MZ======" | len }}', '{{ .user | b32enc | b32dec }}', '{{ .invalid | b32enc | b32dec | b64enc }}', '{{ b32enc "fooba" }}', '{{ b32enc "foobar" }}', '{{ base "/a/b/c.txt" }}', '{{ base "" }}',
    '{{ base "/" }}', '{{ base "a/b/" }}', '{{ dir "/a/b/c" }}', '{{ dir "a" }}', '{{ dir "/" }}', '{{ dir "" }}',
    '{{ clean "a//b/../c/." }}', '{{ clean "/../a" }}', '{{ clean "../../a" }}', '{{ clean "" }}', '{{ ext "a/b.tar.gz" }}',
    '{{ ext "a.b/c" }}', '{{ isAbs "/x" }}', '{{ isAbs "x" }}', '{{ osBase "/a/b" }}', '{{ osDir "/a/b" }}',
    '{{ osClean "a/./b" }}', '{{ osExt "x.y" }}', '{{ osIsAbs "/" }}', '{{ abbrev 5 "hello world" }}', '{{ abbrev 3 "hello" }}', '{{ abbrev 20 "hello" }}', '{{ abbrev 4 "héllo wörld" }}',
    '{{ abbrevboth 5 10 "1234 5678 9123" }}', '{{ abbrevboth 0 6 "abcdefghij" }}', '{{ abbrevboth 3 7 "abcdefghijklmno" }}',
    '{{ abbrevboth 10 7 "abcdefghijklmnopq" }}', '{{ abbrevboth 20 8 "abcdefghijklmnopq" }}', '{{ abbrevboth -1 5 "abcdefghij" }}',
    '{{ abbrevboth 6 4 "abcdefghij" }}', '{{ abbrevboth 7 10 "abcdefghijklmnopqrstuvwxyz" }}', '{{ abbrev (add 3 2) "x" }}',
    '{{ swapcase "Hello wORLD ǅx ß éÉ" }}', '{{ camelcase "http_server_url" }}', '{{ camelcase "__a--b  c" }}', '{{ camelcase "_" }}',
    '{{ camelcase "aBC_dEF" }}', '{{ camelcase "x" }}', '{{ snakecase "HTTPServerURL" }}', '{{ snakecase "fooBar2Baz" }}',
    '{{ snakecase "foo2bar" }}', '{{ snakecase "ABC123def" }}', '{{ snakecase "a.b-c d__e" }}', '{{ snakecase "Über_Größe" }}',
    '{{ snakecase "中文ABC" }}', '{{ snakecase "x1Y2z3" }}', '{{ snakecase "1A" }}', '{{ snakecase "A1" }}', '{{ snakecase "A1b" }}',
    '{{ snakecase "aa 11 bb" }}', '{{ snakecase "--" }}', '{{ snakecase "HelloWorld!!Foo" }}', '{{ snakecase "$price€Value" }}',
    '{{ kebabcase "someHTTPThing" }}', '{{ kebabcase "v2Api" }}', '{{ kebabcase "ID" }}', '{{ kebabcase "a\\xffB" }}',
    '{{ kebabcase "ǅungla Ǆ" }}', '{{ snakecase "X" }}', '{{ snakecase "9" }}', '{{ snakecase "aB.Cd" }}', '{{ snakecase "a_1_b" }}', '{{ swapcase "a\\tb c" }}', '{{ initials "hello big world" }}',
    '{{ initials "  é ü\\u00a0x" }}', '{{ untitle "Hello World\\tFoo" }}', '{{ untitle "ÉCOLE" }}', '{{ untitle "" }}', '{{ wrap 5 "hello world foo" }}', '{{ wrapWith 5 "\\t" "hello world" }}',
    '{{ wrap 10 "The quick brown fox jumps over the lazy dog" }}', '{{ wrap 3 "abcdefgh ij" }}', '{{ wrapWith 3 "|" "abcdefgh ij" }}',
    '{{ wrap 0 "a b c" }}', '{{ wrap -5 "ab cd" }}', '{{ wrap 80 "short" }}', '{{ wrap 4 "  lead  spaces  " }}', '{{ wrapWith 4 "" "abcdefghij" }}',
    '{{ wrap 5 "héllo wörld ü" }}', '{{ wrap 2 "a\\nb c" }}', '{{ wrap 5 "" }}', '{{ wrapWith 2 "<br>" "ab cd ef" }}', '{{ wrap 1 "a b" }}',
    '{{ derivePassword 1 "long" "pw" "user" "example.com" }}', '{{ genPrivateKey "rsa" }}', '{{ genCA "ca" 365 }}',
    '{{ encryptAES "k" "t" }}', '{{ decryptAES "k" "t" }}', '{{ semver "1.2.3" }}', '{{ semverCompare ">1.0" "1.2.3" }}',
    '{{ urlParse "http://x" }}', '{{ urlJoin (dict) }}', '{{ fail "boom" }}', '{{ fail .password }}', '{{ fail }}',
 '{{ addf 1.1 2.2 }}', '{{ mulf 1.5 2 }}', '{{ round 3.14159 2 }}',
    '{{ duration 90 }}', '{{ duration "90" }}', '{{ duration (int64 90) }}', '{{ duration "3661" }}', '{{ duration "-45" }}', '{{ duration "0" }}',
    '{{ duration "x" }}', '{{ duration "1.5" }}', '{{ duration "+7" }}', '{{ duration "9223372036" }}', '{{ duration "9223372037" }}',
    '{{ duration "99999999999999999999" }}', '{{ duration "-99999999999999999999" }}', '{{ duration (int64 -1) }}', '{{ duration (int64 86400) }}',
    '{{ duration 1.5 }}', '{{ duration nil }}', '{{ duration "1_0" }}', '{{ duration (add 18446744074 0) }}', '{{ duration (add 9223372037000 0) }}', '{{ ago now }}', '{{ toDate "2006-01-02" "2020-01-02" }}',
]:
    add(t)

# --- Sprig: math ---
for t in [
    '{{ add 1 2 }}', '{{ add }}', '{{ add 1 "2" 3.9 }}', '{{ add .num 1 }}', '{{ add1 .num }}', '{{ sub 5 7 }}',
    '{{ sub .num .neg }}', '{{ mul 2 3 4 }}', '{{ mul 5 }}', '{{ div 7 2 }}', '{{ div -7 2 }}', '{{ div 1 0 }}',
    '{{ mod 7 3 }}', '{{ mod -7 3 }}', '{{ mod 1 0 }}', '{{ max 1 5 3 }}', '{{ biggest 2 }}', '{{ min 4 .neg 9 }}',
    '{{ min }}', '{{ floor 1.7 }}', '{{ floor -1.2 }}', '{{ ceil 1.2 }}', '{{ ceil "2.5" }}', '{{ floor .float }}',
    '{{ until 5 }}', '{{ until -3 }}', '{{ until 0 }}', '{{ untilStep 0 10 3 }}', '{{ untilStep 10 0 -4 }}',
    '{{ untilStep 0 10 0 }}', '{{ untilStep 0 10 -1 }}', '{{ add 9223372036854775807 1 }}', '{{ add "x" 1 }}',
    '{{ add true 1 }}', '{{ add nil 1 }}', '{{ typeOf (add 1 2) }}', '{{ trunc (add 1 1) .user }}',
    '{{ repeat (len .user) "x" }}', '{{ add 1.5 1.5 }}', '{{ add "0x10" "010" }}', '{{ add "1e3" }}', '{{ add " 1" }}',
    '{{ max "3" 2 }}', '{{ seq 5 }}', '{{ seq -3 }}', '{{ seq 0 }}', '{{ seq 1 }}', '{{ seq 2 5 }}', '{{ seq 5 2 }}', '{{ seq 0 2 10 }}',
    '{{ seq 10 -3 1 }}', '{{ seq 10 3 1 }}', '{{ seq 1 0 5 }}', '{{ seq }}', '{{ seq 1 2 3 4 }}', '{{ seq "3" }}', '{{ seq 1 -1 1 }}',
    '{{ toDecimal "0777" }}', '{{ toDecimal "777" }}', '{{ toDecimal 777 }}', '{{ toDecimal "-17" }}', '{{ toDecimal "8" }}',
    '{{ toDecimal "0o17" }}', '{{ toDecimal "" }}', '{{ toDecimal "+7" }}', '{{ toDecimal "7_7" }}', '{{ toDecimal 1.5 }}',
    '{{ toDecimal "1777777777777777777777" }}', '{{ toDecimal "777777777777777777777" }}', '{{ typeOf (toDecimal "7") }}', '{{ addf 0.1 0.2 }}', '{{ addf 1.1 2.2 3.3 }}', '{{ addf }}', '{{ addf "1.5" 2 }}', '{{ add1f 0.1 }}', '{{ add1f "x" }}',
    '{{ subf 1.0 0.9 }}', '{{ subf 10 }}', '{{ subf 0.3 0.1 0.1 }}', '{{ mulf 1.1 1.1 }}', '{{ mulf 3 0.1 }}', '{{ mulf 1e300 1e300 }}',
    '{{ mulf 123456789.123 987654321.987 }}', '{{ addf 1e-300 1 }}', '{{ addf 1e20 1 }}', '{{ mulf 0.000001 0.000001 }}', '{{ divf 1 3 }}',
    '{{ maxf 1.5 2 -3 }}', '{{ minf 1.5 2 -3 }}', '{{ maxf "2.5" 1 }}', '{{ minf 0.0 -0.0 }}', '{{ maxf -0.0 0.0 }}', '{{ maxf 1 }}',
    '{{ round 3.14159 2 }}', '{{ round 2.5 0 }}', '{{ round -2.5 0 }}', '{{ round 1.005 2 }}', '{{ round 1.2345 3 0.3 }}', '{{ round 1.5 -1 }}',
    '{{ round "7.777" 1 }}', '{{ round 123.456 30 }}', '{{ round 0.125 2 }}', '{{ round 1e10 5 }}', '{{ typeOf (addf 1 2) }}', '{{ addf 0.1 0.2 | printf "%.20f" }}', '{{ until (atoi .num) | len }}', '{{ range until 3 }}{{ . }}{{ end }}', '{{ add1 "9.00" }}',
]:
    add(t)

# --- Sprig: defaults, logic, types ---
for t in [
    '{{ default "d" .absent }}', '{{ default "d" .empty }}', '{{ default "d" .user }}', '{{ .absent | default "d" }}',
    '{{ .user | default "d" }}', '{{ default "d" }}', '{{ default "d" 0 }}', '{{ default "d" false }}', '{{ default "d" (list) }}',
    '{{ default "d" (dict) }}', '{{ default "d" 1.5 }}', '{{ default "d" nil }}', '{{ default 5 .absent }}', '{{ default }}',
    '{{ empty .user }}', '{{ empty .absent }}', '{{ empty 0 }}', '{{ empty (list) }}', '{{ empty (dict "a" 1) }}',
    '{{ coalesce .absent .empty .user }}', '{{ coalesce .absent 0 }}', '{{ coalesce }}', '{{ all 1 "a" true }}',
    '{{ all 1 "" }}', '{{ all }}', '{{ any 0 "" .user }}', '{{ any }}', '{{ ternary "y" "n" true }}', '{{ ternary "y" "n" false }}',
    '{{ ternary "y" "n" 1 }}', '{{ true | ternary "y" "n" }}', '{{ ternary "y" "n" (eq .user "admin") }}',
    '{{ typeOf .user }}', '{{ typeOf 1 }}', '{{ typeOf 1.5 }}', '{{ typeOf nil }}', '{{ typeOf (list) }}', '{{ typeOf (dict) }}',
    '{{ typeOf . }}', '{{ typeOf true }}', '{{ typeOf (index .user 0) }}', '{{ typeOf (splitList "," "a") }}', '{{ typeOf (split "," "a") }}',
    '{{ kindOf .user }}', '{{ kindOf (list) }}', '{{ kindOf (dict) }}', '{{ kindOf nil }}', '{{ kindOf 1 }}', '{{ kindOf . }}',
    '{{ typeIs "string" .user }}', '{{ typeIs "int" 1 }}', '{{ typeIsLike "string" .user }}', '{{ kindIs "map" . }}',
    '{{ kindIs "slice" (list) }}', '{{ deepEqual (list 1 2) (list 1 2) }}', '{{ deepEqual (list 1) (list "1") }}',
    '{{ deepEqual (dict "a" 1) (dict "a" 1) }}', '{{ deepEqual 1 (add 0 1) }}', '{{ deepEqual nil nil }}',
    '{{ deepCopy (dict "a" (list 1)) }}', '{{ mustDeepCopy (list 1) }}', '{{ typeOf (toJson 1) }}',
]:
    add(t)

# --- Sprig: lists and dicts ---
for t in [
    '{{ list }}', '{{ list 1 "a" nil 1.5 true }}', '{{ tuple 1 2 }}', '{{ dict }}', '{{ dict "a" 1 "b" "x" }}', '{{ dict "a" }}',
    '{{ dict 1 2 }}', '{{ dict "a" 1 "a" 2 }}', '{{ dict nil 1 }}', '{{ get (dict "a" 1) "a" }}', '{{ get (dict "a" 1) "b" }}',
    '{{ get . "user" }}', '{{ get (dict) 1 }}', '{{ $d := dict "a" 1 }}{{ $_ := set $d "b" 2 }}{{ $d }}',
    '{{ set (dict) "k" "v" }}', '{{ unset (dict "a" 1 "b" 2) "a" }}', '{{ hasKey (dict "a" 1) "a" }}', '{{ hasKey . "user" }}',
    '{{ hasKey (dict) "x" }}', '{{ keys (dict "a" 1) }}', '{{ keys . }}', '{{ keys }}',
    '{{ keys (dict "b" 1 "a" 2) | sortAlpha }}', '{{ values (dict "a" 1) }}', '{{ pick (dict "a" 1 "b" 2) "a" }}',
    '{{ omit (dict "a" 1 "b" 2) "a" }}', '{{ pluck "a" (dict "a" 1) (dict "b" 2) (dict "a" 3) }}', '{{ pluck "a" }}',
    '{{ merge (dict "a" 1) (dict "b" 2) }}', '{{ mergeOverwrite (dict "a" 1) (dict "a" 2) }}',
    '{{ dig "a" "b" "def" (dict "a" (dict "b" 5)) }}', '{{ dig "a" "x" "def" (dict "a" (dict "b" 5)) }}', '{{ dig "a" (dict) }}',
    '{{ first (list 1 2) }}', '{{ first (list) }}', '{{ first .user }}', '{{ first nil }}', '{{ mustFirst (list) }}', '{{ last (list 1 2) }}',
    '{{ rest (list 1 2 3) }}', '{{ rest (list) }}', '{{ initial (list 1 2 3) }}', '{{ reverse (list 1 2 3) }}', '{{ reverse (list) }}',
    '{{ uniq (list 1 2 1 "1" 2) }}', '{{ compact (list 1 0 "" nil "a" false) }}', '{{ without (list 1 2 3 2) 2 }}',
    '{{ without (list 1 2 3) 2 3 }}', '{{ has 2 (list 1 2) }}', '{{ has "2" (list 1 2) }}', '{{ has 1 nil }}', '{{ has 1 "x" }}',
    '{{ append (list 1) 2 }}', '{{ push (list) "a" }}', '{{ prepend (list 1) 0 }}', '{{ append nil 1 }}', '{{ append .user 1 }}',
    '{{ concat (list 1) (list 2 3) }}', '{{ concat }}', '{{ concat (list 1) 2 }}', '{{ chunk 2 (list 1 2 3 4 5) }}',
    '{{ chunk 0 (list 1) }}', '{{ slice (list 1 2 3) "1" }}', '{{ slice .user 1 }}', '{{ mustSlice (list 1 2) 0 1 }}',
    '{{ first (splitList "," .csv) }}', '{{ last (splitList "," .csv) }}', '{{ reverse (splitList "," .csv) }}',
    '{{ uniq (splitList "," "a,b,a") }}', '{{ append (splitList "," "a") "b" }}', '{{ list 1 2 | len }}', '{{ len (dict "a" 1) }}',
    '{{ $l := list 1 2 }}{{ $l2 := append $l 3 }}{{ $l }}{{ $l2 }}', '{{ $d := dict }}{{ set $d "x" 1 | len }}{{ $d.x }}',
    '{{ $d := dict "a" (dict "b" 1) }}{{ $d.a.b }}{{ $d.a.c }}', '{{ (dict "a" 1).a }}', '{{ (list 1).x }}',
    '{{ $d := dict "n" nil }}{{ $d.n }}', '{{ index (list 1 2) 0 | add 1 }}', '{{ range $i, $v := dict "x" (list 1 2) }}{{ $i }}{{ $v }}{{ end }}',
]:
    add(t)

# Random functions: compared by shape (length).
for t in ['{{ shuffle "abc" }}', '{{ shuffle "é\xffa" }}', '{{ shuffle "" }}', '{{ randAlphaNum 10 }}', '{{ randAlpha 5 }}',
          '{{ randNumeric 5 }}', '{{ randAscii 5 }}', '{{ randAlphaNum 0 }}', '{{ randAlphaNum -3 }}', '{{ randNumeric -1 }}',
          '{{ uuidv4 }}', '{{ randInt 1 10 }}', '{{ randInt 5 5 }}', '{{ randInt -9 -1 }}', '{{ randBytes 8 }}', '{{ randBytes 0 }}',
          '{{ randBytes -1 }}', '{{ bcrypt "x" }}', '{{ bcrypt .password }}', '{{ bcrypt (repeat 100 "a") }}',
          '{{ htpasswd "u" "p" }}', '{{ htpasswd .user .password }}', '{{ htpasswd "a:b" "p" }}', '{{ htpasswd .absent "p" }}',
          '{{ uuidv4 | len }}', '{{ randAlphaNum 16 | len }}', '{{ randAlphaNum "5" }}', '{{ uuidv4 1 }}']:
    add(t, check="shape")

# Go iterates maps in random order: keys and values of several entries are compared by shape.
for t in ['{{ keys (dict "b" 1 "a" 2) }}', '{{ values (dict "a" 1 "b" 2) }}']:
    add(t, check="shape")

# --- JSON ---
for t in [
    '{{ toJson . }}', '{{ toJson .user }}', '{{ toJson .password }}', '{{ toRawJson .password }}', '{{ toPrettyJson . }}',
    '{{ toJson (dict "a" 1 "b" (list 1 "x" nil true 1.5)) }}', '{{ toPrettyJson (dict "a" (list 1 (dict "b" 2)) "c" (dict) "d" (list)) }}',
    '{{ toJson .ctrl }}', '{{ toJson .invalid }}', '{{ toJson .nbsp }}', '{{ toJson .unicode }}', '{{ toJson nil }}',
    '{{ toJson 1e21 }}', '{{ toJson 1e20 }}', '{{ toJson 0.000001 }}', '{{ toJson 0.0000001 }}', '{{ toJson 1.5e-7 }}',
    '{{ toJson 123456789.123 }}', '{{ toJson -0.0 }}', '{{ toJson (float64 "NaN") }}', '{{ mustToJson (float64 "NaN") }}',
    '{{ toJson (list) }}', '{{ toJson (dict) }}', '{{ toRawJson (dict "h" "<a&b>") }}', '{{ toJson (dict "<k>" 1) }}',
    '{{ fromJson .json }}', '{{ (fromJson .json).a }}', '{{ (fromJson .json).b }}', '{{ index (fromJson .json).b 2 }}',
    '{{ toJson (fromJson .json) }}', '{{ fromJson "[1,2]" }}', '{{ fromJson "\\"s\\"" }}', '{{ fromJson "1" }}', '{{ fromJson "null" }}',
    '{{ fromJson "{bad" }}', '{{ mustFromJson "{bad" }}', '{{ fromJson "" }}', '{{ typeOf (fromJson "1") }}',
    '{{ fromJson "12345678901234567890" }}', '{{ fromJson "{\\"a\\":1,\\"a\\":2}" }}', '{{ toPrettyJson (list 1 2) }}',
    '{{ toPrettyJson "x" }}', '{{ toPrettyJson (dict "a" (dict)) }}', '{{ mustToPrettyJson (dict "k" 1) }}', '{{ mustToRawJson (list "<") }}',
    '{{ toJson (until 3) }}', '{{ toJson (rest (list)) }}', '{{ toJson (initial (list 1)) }}', '{{ toJson (rest (list 1)) }}',
    '{{ toJson (regexFindAll "x" "abc" -1) }}', '{{ toJson (regexFindAll "b" "abc" 0) }}', '{{ toJson (regexSplit "b" "abc" 0) }}',
    '{{ deepEqual (rest (list)) (list) }}', '{{ typeOf (rest (list)) }}', '{{ toJson (compact (list)) }}', '{{ toJson (uniq (list)) }}',
    '{{ toJson (without (list 1) 1) }}', '{{ toJson (splitList "," "") }}', '{{ toJson (keys (dict)) }}', '{{ toJson (until 0) }}',
    '{{ toJson (toStrings nil) }}', '{{ toJson (sortAlpha (list)) }}', '{{ toJson (reverse (list)) }}', '{{ toJson (concat) }}', '{{ toJson (split "," "a,b") }}', '{{ toJson (index .user 0) }}', '{{ toJson (add 1 2) }}',
]:
    add(t)

# --- Regex ---
for t in [
    '{{ regexMatch "^[a-z]+$" .user }}', '{{ regexMatch "\\\\d+" .port }}', '{{ regexMatch "(" .user }}', '{{ mustRegexMatch "(" .user }}',
    '{{ regexFind "[0-9]+" "ab123cd45" }}', '{{ regexFindAll "[0-9]+" "ab123cd45" -1 }}', '{{ regexFindAll "[0-9]+" "a1b2c3" 2 }}',
    '{{ regexFindAll "a*" "baaac" -1 }}', '{{ regexFindAll "" "abc" -1 }}', '{{ regexFindAll "x*" "" -1 }}', '{{ regexFindAll "a" "aaa" 0 }}',
    '{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}', '{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W" }}',
    '{{ regexReplaceAll "a*" "baaac" "X" }}', '{{ regexReplaceAll "" "abc" "-" }}', '{{ regexReplaceAll "(?P<n>b)" "abc" "[$n]" }}',
    '{{ regexReplaceAll "b" "abc" "$$" }}', '{{ regexReplaceAll "b" "abc" "$" }}', '{{ regexReplaceAll "(b)" "abc" "$2" }}',
    '{{ regexReplaceAllLiteral "b" "abc" "$1" }}', '{{ regexSplit "," "a,b,,c" -1 }}', '{{ regexSplit "," "a,b,c" 2 }}',
    '{{ regexSplit "x*" "axbc" -1 }}', '{{ regexSplit "," "" -1 }}', '{{ regexSplit "" "abc" -1 }}', '{{ regexSplit "," "a,b" 0 }}',
    '{{ regexQuoteMeta "a.b*c" }}', '{{ regexMatch "\\\\w+" "é" }}', '{{ regexMatch "^\\\\w+$" "é" }}', '{{ regexFindAll "\\\\d" "1٣2" -1 }}',
    '{{ regexMatch "\\\\s" "\\u00a0" }}', '{{ regexMatch "\\\\bé" " é" }}', '{{ regexFindAll "." .unicode -1 }}',
    '{{ regexMatch "(?i)ADMIN" .user }}', '{{ regexMatch "[[:alpha:]]+" .user }}', '{{ regexMatch "[a[b]" "[" }}',
    '{{ regexMatch "(?x) a" "a" }}', '{{ regexMatch "\\\\Qa.b\\\\E" "a.b" }}', '{{ regexMatch "a{1001}" "a" }}',
    '{{ regexReplaceAll "(\\\\w+)@(\\\\w+)" "me@host you@there" "$2:$1" }}', '{{ regexFind "[" "x" }}',
    '{{ regexReplaceAll "^" "abc" ">" }}', '{{ regexReplaceAll "$" "abc" "<" }}', '{{ regexReplaceAll "\\\\b" "ab cd" "|" }}',
    '{{ regexFindAll "(a)|b" "ab" -1 }}', '{{ regexFind "a{1001}" "aaaa" }}', '{{ regexMatch "a{1001}" "aaaa" }}',
    '{{ regexFind "a{2,1001}" "aaaa" }}', '{{ regexFind "a{1000}" "aaaa" }}', '{{ regexFind "a**" "aaa" }}', '{{ regexFind "a+*" "aaa" }}',
    '{{ regexFind "x{2}{3}" "xxxxxx" }}', '{{ regexFind "(?i)k" "\u212a" }}', '{{ regexFind "\\b{start}x" "x" }}',
    '{{ regexFind "a{,3}" "a{,3}" }}', '{{ regexFind "a{" "a{" }}', '{{ regexFind "a{1" "a{1" }}', '{{ regexFind "\\123" "S" }}',
    '{{ regexFind "[a-]" "-" }}', '{{ regexFind "[]a]" "]" }}', '{{ regexFind "[^]a]" "b" }}', '{{ regexFind "\\pL+" "héllo1" }}',
    '{{ regexFind "\\p{Greek}+" "aΩβc" }}', '{{ regexFind "(?s)a.b" "a\nb" }}', '{{ regexFind "(?U)a+" "aaa" }}',
    '{{ regexFind "(?m)^b$" "a\nb\nc" }}', '{{ regexFind "\\x{41}" "A" }}', '{{ regexFind "\\z" "ab" }}', '{{ regexFind "[[:^alpha:]]+" "ab12" }}',
    '{{ regexFind "\\Aa" "ab" }}', '{{ regexFind "(?P<x>a)(?P<x>b)" "ab" }}', '{{ regexFind "a{2}{3}" "aaaaaa" }}', '{{ regexFind "(a*)*" "b" }}',
    '{{ regexFind "(a*)+" "b" }}', '{{ regexFind "(?i)ß" "ẞ" }}', '{{ regexFind "\\Q" "x" }}', '{{ regexFind "[\\d-z]" "-" }}', '{{ regexMatch "." .invalid }}', '{{ regexMatch "[^a]" "é" }}',
]:
    add(t)

# --- Dates (deterministic inputs) ---
for layout in ["2006-01-02", "2006-01-02T15:04:05Z07:00", "Jan 2, 2006 at 3:04pm (MST)", "Monday January _2 15:04:05 2006",
               "02/01/06 03:04:05 PM -0700 -07:00 -07", "__2 002 .000 .999 ,000000 .9", "Mon Jan 2 15:04:05 MST 2006",
               "20060102150405", "Janx Mond", "1 2 3 4 5 6"]:
    for d in ["0", "1700000000", "(int64 951782400)", "-86400", "1234567890"]:
        add('{{ date %s %s }}' % (json.dumps(layout), d))
for t in ['{{ dateInZone "2006-01-02 15:04 MST" 1700000000 "UTC" }}', '{{ dateInZone "2006" 0 "Europe/Paris" }}',
          '{{ dateInZone "15:04 MST" 0 "" }}', '{{ htmlDate 1700000000 }}', '{{ htmlDateInZone 0 "UTC" }}',
          '{{ date "2006" "2020" }}', '{{ date "2006" 1.5 }}', '{{ unixEpoch 5 }}']:
    add(t)
for t in ['{{ now | date "2006" }}', '{{ now | date "2006-01-02T15:04:05Z07:00" }}', '{{ now | htmlDate }}',
          '{{ dateInZone "2006-01" now "UTC" }}', '{{ now | unixEpoch }}', '{{ typeOf now }}']:
    add(t, check="shape")
add('{{ now }}')
add('{{ now.Year }}')

# --- Realistic sealed-secrets templates ---
REAL = {
    "registry": b"registry.example.com", "username": b"robot$ci", "password": b"p@ss:w\"rd\\<>&", "email": b"ci@example.com",
}
for t in [
    '{"auths":{"{{ .registry }}":{"username":"{{ .username }}","password":"{{ .password }}","auth":"{{ printf "%s:%s" .username .password | b64enc }}"}}}',
    '{{ dict "auths" (dict .registry (dict "username" .username "password" .password "email" .email "auth" (printf "%s:%s" .username .password | b64enc))) | toJson }}',
    '{{- $auth := printf "%s:%s" .username .password | b64enc -}}\n{{ toPrettyJson (dict "auths" (dict .registry (dict "auth" $auth))) }}',
    '{{ toRawJson (dict "auths" (dict .registry (dict "username" .username "password" .password))) }}',
    '{{ printf "{\\"auths\\":{\\"%s\\":{\\"auth\\":\\"%s\\"}}}" .registry (printf "%s:%s" .username .password | b64enc) }}',
]:
    add(t, data=REAL, name=".dockerconfigjson")
DB = {"user": b"app", "password": b"p@ss/w:rd?&", "host": b"db.internal", "port": b"5432", "dbname": b"orders"}
for t in [
    'postgres://{{ .user }}:{{ .password | urlquery }}@{{ .host }}:{{ .port }}/{{ .dbname }}?sslmode=require',
    'postgresql://{{ .user }}:{{ .password }}@{{ .host }}:{{ .port | default "5432" }}/{{ .dbname }}',
    'jdbc:postgresql://{{ .host }}:{{ .port }}/{{ .dbname }}?user={{ .user }}&password={{ .password | urlquery }}',
    'mysql://{{ .user }}:{{ .password }}@tcp({{ .host }}:{{ default "3306" .mysqlport }})/{{ .dbname }}',
    'Server={{ .host }},{{ .port }};Database={{ .dbname }};User Id={{ .user }};Password={{ .password }};',
    '{{ printf "host=%s port=%s user=%s password=%s dbname=%s" .host .port .user (.password | quote) .dbname }}',
    'DATABASE_URL={{ printf "postgres://%s:%s@%s/%s" .user (urlquery .password) .host .dbname | quote }}',
    'redis://:{{ .password }}@{{ .host }}:{{ .port }}/0', '{{ .user }}:{{ .password | sha256sum }}',
    '{{ .host }}:{{ add (atoi .port) 1 }}', '{{ if eq .port "5432" }}default port{{ else }}custom{{ end }}',
]:
    add(t, data=DB, name="url")
CFG = {"cert": DATA["cert"], "key": b"-----BEGIN KEY-----\nabc\n-----END KEY-----", "token": b"tok3n", "apiKey": b"k-123", "debug": b"true", "replicas": b"3"}
for t in [
    'tls:\n  cert: |\n{{ .cert | indent 4 }}\n  key: |\n{{ .key | indent 4 }}',
    'tls:\n  cert: |{{ .cert | nindent 4 }}\n  key: |{{ .key | nindent 4 }}',
    'config.yaml: |\n  token: {{ .token | quote }}\n  apiKey: {{ .apiKey | squote }}\n  debug: {{ .debug }}\n',
    '[default]\ntoken = {{ .token }}\n{{- if .debug }}\nlog_level = debug\n{{- end }}\n',
    '{{- range $k, $v := . }}\n{{ $k | upper }}={{ $v | quote }}\n{{- end }}',
    '{{- range $k, $v := . }}{{ $k }}: {{ $v | b64enc }}\n{{ end -}}',
    'replicas: {{ .replicas }}\nmax: {{ mul (atoi .replicas) 2 }}\n', '{{ .cert | trim | b64enc }}',
    '{{ .cert | replace "\\n" "\\\\n" }}', 'ca.crt: {{ .cert | b64enc | quote }}', '{{ .token | sha1sum | trunc 8 }}',
    '{{ with .missing }}{{ . }}{{ else }}default-token{{ end }}', '{{ .token | default (index . "fallback") }}',
    '{{ $parts := splitList "-" .apiKey }}{{ index $parts 1 }}', 'api_key = "{{ .apiKey | upper }}"\ndebug = {{ .debug | lower }}',
    '{{ toYaml . }}', '{{ .debug | ternary "on" "off" }}', '{{ if eq .debug "true" }}on{{ end }}',
    '{{ $d := dict }}{{ range $k, $v := . }}{{ $_ := set $d ($k | upper) ($v | len) }}{{ end }}{{ $d | toJson }}',
    '{{ required "token is required" .token }}', '{{ tpl "x" . }}',
]:
    add(t, data=CFG, name="config")
for t in ['{{ .a }}{{ .b }}', '{{ .a | b64enc }}', '{{ .a | quote }}', '{{ .a | toJson }}', '{{ .a | upper }}', '{{ .a | trim }}',
          '{{ .a | len }}', '{{ printf "%q %x %s" .a .a .a }}', '{{ .a | replace "\\u00e9" "e" }}']:
    add(t, data={"a": "é\xff".encode("latin-1") + "ü😀\u0301".encode(), "b": b"\xed\xa0\x80\xf4\x90\x80\x80"})

# Unicode through every case-mapping function.
SAMPLES = ["ß", "ǅ", "ǈ", "İ", "ı", "ſ", "K", "Ω", "ẞ", "ﬀ", "ᾳ", "ᾼ", "ΐ", "ŉ", "Σ", "ς", "µ", "ÿ", "Ÿ", "ǰ", "ɐ", "Ɐ",
           "ꭓ", "Ꭓ", "𐐀", "𐐨", "ǲ", "ͅ", "ι", "ᲀ", "ꙋ", "ⓐ", "Ⓐ", "ᏸ", "Ᏸ", "ა", "Ა", "ȿ", "Ȿ"]
for ch in SAMPLES:
    add('{{ "%s" | upper }}{{ "%s" | lower }}{{ "%s" | title }}' % (ch, ch, ch))
for t in ['{{ "}}" }}', '{{ `{{` }}x', '{{ .ключ }}', '{{ index . "ключ" }}', '{{ $ключ := 1 }}{{ $ключ }}', '{{ .a٣ }}',
          '{{ .key-dash }}', '{{ index . "key-dash" }}', '{{ .x.y.z }}', '{{ with .x }}{{ .y }}{{ end }}']:
    add(t, data={"ключ": b"v", "key-dash": b"d", "x": b"s", "a٣".encode().decode(): b"arabic"})

# Unicode sweep: one code point in 7 from U+0080 to U+33FFF (the residue shifting from slice to slice, so every
# residue is met) and the planes' edges, through the case mappings, strconv.Quote, %+q and JSEscape, to pin Go
# 1.19's Unicode 13 tables (src/unicode_tables.rs).
SWEEP = list(range(0x80, 0x34000)) + list(range(0xE0000, 0xE0200)) + list(range(0xF0000, 0xF0010)) + list(range(0x10FFF0, 0x110000))
SWEEP = [c for c in SWEEP if not 0xD800 <= c <= 0xDFFF]
for n, i in enumerate(range(0, len(SWEEP), 7 * 256)):
    chunk = "".join(chr(c) for c in SWEEP[i:i + 7 * 256] if (c + n) % 7 == 0).encode()
    add('{{ .s | upper }}|{{ .s | lower }}|{{ .s | title }}|{{ .s | quote }}|{{ .s | js }}|{{ printf "%+q" .s }}', data={"s": chunk})

# Realistic templates of the kind teams keep in SealedSecrets (second batch, written as users write them).
APP = {"DB_USER": b"svc_orders", "DB_PASSWORD": b"Zx9!q@#$%^&*()_+{}|:<>?~`", "DB_HOST": b"pg-primary.db.svc.cluster.local",
       "DB_PORT": b"5432", "DB_NAME": b"orders", "REDIS_PASSWORD": b"r3d1s==", "API_TOKEN": b"ghp_ABCdef123456",
       "SMTP_PASSWORD": b"smtp pass with spaces", "ca.crt": DATA["cert"], "tls.key": b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
       "config.json": b'{"feature":{"enabled":true,"ratio":0.25},"hosts":["a","b"]}', "users": b"alice:admin,bob:viewer",
       "htpasswd_user": b"admin", "empty": b"", "S3_KEY": b"AKIAIOSFODNN7EXAMPLE", "S3_SECRET": b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
for t in [
    'DATABASE_URL=postgres://{{ .DB_USER }}:{{ .DB_PASSWORD | urlquery }}@{{ .DB_HOST }}:{{ .DB_PORT }}/{{ .DB_NAME }}',
    '{{- /* application.yaml for Spring */ -}}\nspring:\n  datasource:\n    url: jdbc:postgresql://{{ .DB_HOST }}:{{ .DB_PORT }}/{{ .DB_NAME }}\n    username: {{ .DB_USER }}\n    password: {{ .DB_PASSWORD | quote }}\n',
    'REDIS_URL=redis://:{{ .REDIS_PASSWORD }}@redis-master:6379/0\n',
    '{{ printf "%s:%s" .DB_USER .DB_PASSWORD | b64enc }}',
    '[client]\nuser={{ .DB_USER }}\npassword="{{ .DB_PASSWORD | replace "\"" "\\\"" }}"\nhost={{ .DB_HOST }}\n',
    '{{- $u := index . "DB_USER" -}}{{- $p := index . "DB_PASSWORD" -}}\n{"user": {{ $u | toJson }}, "password": {{ $p | toJson }}}',
    '{{ dict "username" .DB_USER "password" .DB_PASSWORD "host" .DB_HOST "port" (atoi .DB_PORT) | toPrettyJson }}',
    '{{ index . "ca.crt" | b64enc }}', '{{ index . "tls.key" | nindent 8 }}', 'key: |\n{{ index . "tls.key" | indent 2 }}',
    '{{ $cfg := index . "config.json" | fromJson }}{{ $cfg.feature.enabled }} {{ $cfg.feature.ratio }} {{ index $cfg.hosts 1 }}',
    '{{ $cfg := index . "config.json" | fromJson }}{{ range $cfg.hosts }}host={{ . }}\n{{ end }}',
    '{{ $cfg := index . "config.json" | fromJson }}{{ $_ := set $cfg "extra" "x" }}{{ toJson $cfg }}',
    '{{ range $pair := splitList "," .users }}{{ $kv := splitList ":" $pair }}{{ index $kv 0 }} has role {{ index $kv 1 }}\n{{ end }}',
    '{{ range $i, $u := splitList "," .users }}{{ if $i }},{{ end }}{{ (split ":" $u)._0 | quote }}{{ end }}',
    '{{ htpasswd .htpasswd_user .DB_PASSWORD | len }}', '{{ if .empty }}set{{ else }}unset{{ end }}',
    '{{ .empty | default "fallback" }}', '{{ coalesce .empty .missing .API_TOKEN }}', '{{ .API_TOKEN | trunc 4 }}****',
    '{{ .API_TOKEN | sha256sum }}', '{{ .API_TOKEN | sha1sum | substr 0 7 }}', '{{ .API_TOKEN | adler32sum }}',
    'Authorization: Bearer {{ .API_TOKEN }}', '{{ printf "%-20s|%5s|" .DB_USER .DB_PORT }}', '{{ printf "%q" .SMTP_PASSWORD }}',
    '{{ .SMTP_PASSWORD | squote }}', '{{ .SMTP_PASSWORD | nospace }}', '{{ .SMTP_PASSWORD | title }}', '{{ .SMTP_PASSWORD | upper | replace " " "_" }}',
    '[default]\naws_access_key_id = {{ .S3_KEY }}\naws_secret_access_key = {{ .S3_SECRET }}\n',
    '{"credentials":{"accessKey":"{{ .S3_KEY }}","secretKey":"{{ .S3_SECRET }}"}}',
    '{{ toJson (dict "accessKey" .S3_KEY "secretKey" .S3_SECRET) | b64enc }}',
    '{{- range $k, $v := . }}\n{{- if hasPrefix "DB_" $k }}\n{{ $k | lower | replace "_" "." }}={{ $v }}\n{{- end }}\n{{- end }}',
    '{{- range $k, $v := . }}{{ if not (contains "." $k) }}export {{ $k }}={{ $v | squote }}\n{{ end }}{{ end }}',
    '{{ len . }} items', '{{ .DB_PORT | atoi | add 1 }}', '{{ if gt (atoi .DB_PORT) 1024 }}unprivileged{{ end }}',
    '{{ if eq .DB_HOST "localhost" }}local{{ else if hasSuffix ".local" .DB_HOST }}cluster{{ else }}remote{{ end }}',
    '{{ with .DB_NAME }}dbname={{ . }}{{ end }}{{ with .missing }}never{{ end }}', '{{ .DB_HOST | splitList "." | first }}',
    '{{ (splitList "." .DB_HOST) | last }}', '{{ regexReplaceAll "^pg-(\\w+)\\..*$" .DB_HOST "${1}" }}',
    '{{ regexFind "[0-9]+" .API_TOKEN }}', '{{ .DB_PASSWORD | b64enc | b64dec }}', '{{ .S3_SECRET | b32enc }}',
    '{{ list .DB_USER .DB_NAME | join "/" }}', '{{ list .DB_USER .DB_NAME | toJson }}', '{{ keys (dict "b" 1) | toJson }}',
    '{{ template "conn" . }}{{ define "conn" }}{{ .DB_USER }}@{{ .DB_HOST }}{{ end }}',
    '{{ define "kv" }}{{ .k }}={{ .v }}{{ end }}{{ template "kv" (dict "k" "user" "v" .DB_USER) }}',
    '{{ $host := .DB_HOST }}{{ range $i := until 3 }}replica-{{ $i }}.{{ $host }}\n{{ end }}',
    '{{ "literal with {{ braces }}" }}', '{{`{{ not a template }}`}}', 'no actions at all, just text: {}',
    '{{ .DB_PASSWORD | toString | len }}', '{{ printf "%d" (len .DB_PASSWORD) }}', '{{ .DB_PASSWORD | js }}',
    '{{ .DB_PASSWORD | html }}', '{{ .DB_PASSWORD | urlquery }}', '{{ now | date "2006" | len }}',
    '{{ .users | replace "," "\n" }}', '{{ .users | splitList "," | sortAlpha | join ";" }}', '{{ .missing | quote }}',
    '{{ .missing }}', '{{ index . "missing" | quote }}', '{{ .missing | default "" | quote }}', '{{ empty .missing }}',
]:
    add(t, data=APP, name="app-config")

# Limits and robustness.
for t in ['{{ range until 200000 }}{{ end }}', '{{ repeat 2000000 "x" | len }}', '{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" }}',
          '{{ $d := dict }}{{ $_ := set $d "self" $d }}{{ len $d }}', '(((' * 5 + '{{ ((((((((((1)))))))))) }}']:
    add(t)

# Whatever calls a random or clock-reading function is compared by shape, wherever it sits in the corpus.
NONDET = ("genPrivateKey", "genCA", "genSelfSignedCert", "genSignedCert", "encryptAES", "uuidv4", "rand", "shuffle",
          "bcrypt", "htpasswd", "now")
for c in cases:
    if any(f in c["template"] for f in NONDET):
        c.setdefault("check", "shape")

with open("cases.jsonl", "w") as f:
    for c in cases:
        f.write(json.dumps(c, ensure_ascii=False) + "\n")
print(len(cases), "cases")
