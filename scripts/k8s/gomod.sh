# Sourced by scripts/k8s-build.sh: build Go programs from their published modules, the way
# scripts/dapr-build.sh builds daprd, for modules that `go install module@version` refuses.
#
# Kubernetes and etcd keep their sub-modules in the same repository and point at them with
# relative `replace` directives (`k8s.io/api => ./staging/src/k8s.io/api`). A module zip from the
# proxy holds no nested module, so those paths do not exist in the download; the same code is
# published as modules of its own (k8s.io/api v0.37.2 for Kubernetes v1.37.2), and
# `unreplace_local` points the replaces there instead.

# No ',direct': a fallback to VCS hosts would hang on this network instead of failing fast.
# GOWORK=off: Kubernetes ships a go.work naming the staging folders the zip lacks.
export GOPROXY="${JOBRELAY_GOPROXY:-https://proxy.golang.org}" GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off

# Counts the lines `go list` (downloads) and `go build -v` (one per package compiled) write to
# stderr. On a terminal: one line that updates in place; in a log (CI): one line per 10 %, so a
# long build neither floods the log nor looks hung.
progress() {
  local label=$1 total=${2:-0} tty=0
  [[ -t 2 ]] && tty=1
  awk -v label="$label" -v total="$total" -v tty="$tty" '
    function show(msg) {
      if (tty) printf "\r  %s: %s\033[K", label, msg > "/dev/stderr"
      else print "  " label ": " msg > "/dev/stderr"
    }
    /^go: downloading / { d++; if (tty || d % 50 == 0) show("downloaded " d " modules"); next }
    /^go: / { print > "/dev/stderr"; next }
    total > 0 {
      n++
      pct = int(n * 100 / total); if (pct > 100) pct = 100
      if (tty) { if (n % 10 == 0) show(n "/" total " packages (" pct "%)") }
      else if (pct >= last + 10) { last = pct - pct % 10; show(n "/" total " packages (" last "%)") }
      next
    }
    { print > "/dev/stderr" }
    END {
      if (tty && (n > 0 || d > 0)) printf "\n" > "/dev/stderr"
      if (total > 0) print "  " label ": " n " packages compiled (the rest came from the Go build cache)" > "/dev/stderr"
    }'
}

# Prints the directory of a writable copy of module@version under $work (set by the caller):
# a build in the module cache itself would fail on its read-only files.
module_copy() {
  local module=$1 version=$2 dir dest
  dir=$(go mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -n "$dir" && -d "$dir" ]] || { echo "k8s-build: could not download $module@$version" >&2; return 1; }
  dest="$work/src-$(echo "$module" | tr '/' '_')-$version"
  rm -rf "$dest"
  cp -r "$dir" "$dest"
  chmod -R u+w "$dest"
  echo "$dest"
}

# In the go.mod of the current directory, every replace whose target is a relative path
# (`X => ./staging/...`, `X => ../api`) becomes `X => X@version`, the published sub-module.
unreplace_local() {
  local version=$1 args=() module
  while read -r module; do
    args+=("-dropreplace=$module" "-replace=$module=$module@$version")
  done < <(awk '/=> \.\.?\// { sub(/^replace[ \t]+/, ""); print $1 }' go.mod)
  ((${#args[@]} > 0)) || return 0
  go mod edit "${args[@]}"
}

# go_build LABEL OUT PKG...: compiles PKGs (one main package, or several with OUT a directory)
# with the module's own go.mod, showing progress. GOMAXPROCS and -p 1 keep the build to one
# core: the machine is shared, and the Go build cache makes a second build cheap anyway.
go_build() {
  local label=$1 out=$2 total
  shift 2
  total=$(go list -deps "$@" 2> >(progress "$label") | wc -l)
  GOMAXPROCS=1 nice -n 15 go build -p 1 -v -ldflags "-s -w ${LDFLAGS:-}" -o "$out" "$@" \
    2>&1 >/dev/null | progress "$label" "$total"
}
