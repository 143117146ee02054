# Runs as `bash -c "$(cat exec.sh)" rig COMMAND...` with the caller's environment and working
# directory, in both rig modes: looks COMMAND up so a missing one gives one clear line and 127.
c=$1
if [[ $c == */* ]]; then
	[[ -e $c ]] || { echo "rig: $c: No such file or directory" >&2; exit 127; }
elif ! type -P -- "$c" >/dev/null; then
	echo "rig: $c: command not found" >&2
	exit 127
fi
exec -- "$@"
