# Sourced by scripts/bench-watermark and scripts/bench-peer (from the repository root): the
# source clip and the attack list both benchmarks share.
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# The 6 s 1280x720 30 fps clip (Big Buck Bunny looped + music-introzik), built once at $1.
bench_source() {
  [ -f "$1" ] || ff -stream_loop 1 -i ../shared/media/video/bigbuckbunny.mp4 -i ../shared/media/audio/music-introzik.ogg \
    -map 0:v -map 1:a -t 6 -r 30 -c:v libx264 -preset fast -crf 16 -c:a aac -b:a 192k "$1"
}

# The attacks, one "name|output extension|ffmpeg arguments" per line, in table order.
bench_attacks() { grep -v -e '^#' -e '^$' scripts/attacks.txt; }
