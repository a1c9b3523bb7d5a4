#!/bin/sh
# Regenerates the crushtool outputs of cases.txt (NAME.stdout, NAME.stderr) with Ceph's own
# crushtool (Debian 12: apt-get install ceph-base, crushtool 16.2.15). Run from this folder.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -v '^#' cases.txt | while IFS='|' read -r name map options; do
    name=$(echo "$name" | xargs)
    map=$(echo "$map" | xargs)
    case "$map" in
        ./*) source_map="$map" ;;
        *) source_map="../../../../crush/tests/data/$map" ;;
    esac
    crushtool -c "$source_map" -o "$tmp/map.bin"
    # shellcheck disable=SC2086 # the options are a word list
    crushtool -i "$tmp/map.bin" --test $options > "$name.stdout" 2> "$name.stderr"
    [ -s "$name.stderr" ] || rm "$name.stderr"
done
