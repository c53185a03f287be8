# Sourced by scripts/bench-watermark, scripts/bench-peer and scripts/bench-invisibility (from the
# repository root): the benchmark's sources and the attack list they share.
ff() { ffmpeg -hide_banner -loglevel error -nostdin -y "$@"; }

# The sources, one "name|path|what" per line (scripts/make-bench-clips builds them once into
# bench-out/clips/). With a comma-separated list of names, only those, in that order.
bench_sources() {
  local all
  all=$(scripts/make-bench-clips) || return 1
  if [ -z "${1:-}" ]; then echo "$all"; return; fi
  local n line found
  for n in ${1//,/ }; do
    found=false
    while IFS= read -r line; do
      [ "${line%%|*}" = "$n" ] && { echo "$line"; found=true; }
    done <<< "$all"
    $found || { echo "no benchmark source named $n (have: $(cut -d'|' -f1 <<< "$all" | paste -sd,))" >&2; return 1; }
  done
}

# The old single source: the 6 s 1280x720 30 fps clip (Big Buck Bunny looped + music), at $1.
bench_source() {
  [ -f "$1" ] || cp "$(bench_sources bbb | cut -d'|' -f2)" "$1"
}

# The attacks, one "name|output extension|ffmpeg arguments" per line, in table order; with an
# extended regular expression, only those whose name matches it (case-insensitive).
bench_attacks() {
  grep -v -e '^#' -e '^$' scripts/attacks.txt | { if [ -n "${1:-}" ]; then awk -F'|' -v re="$1" 'tolower($1) ~ tolower(re)'; else cat; fi; }
}

# bench_apply IN OUT ARGS BG: one attack's ffmpeg arguments (a line's third field) applied to IN,
# written to OUT; {w} {h} become IN's size, {bg} BG, " >> " chains runs.
bench_apply() {
  local - in=$1 out=$2 args=$3 bg=${4:-} w h step=0 cur=$1 this mid
  set -f # the arguments hold [labels], * and ?: never file name patterns
  IFS=, read -r w h < <(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$in")
  args=${args//\{w\}/$w}; args=${args//\{h\}/$h}; args=${args//\{bg\}/$bg}
  while [[ $args == *" >> "* ]]; do
    this=${args%% >> *}; args=${args#* >> }
    step=$((step + 1)); mid="${out%.*}.run$step.${out##*.}"
    # shellcheck disable=SC2086
    ff -i "$cur" $this "$mid" || return 1
    cur=$mid
  done
  # shellcheck disable=SC2086
  ff -i "$cur" $args "$out" || return 1
  while [ "$step" -gt 0 ]; do rm -f "${out%.*}.run$step.${out##*.}"; step=$((step - 1)); done
}
