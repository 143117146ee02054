# Runs inside the rig's chroot as `bash -c "$(cat inner.sh)" rig-inner "$(cat exec.sh)"`, with
#   fd 3: the caller's environment, NUL-separated NAME=VALUE (from `env -0` on the host)
#   fd 4: NUL-separated: working directory, then the command's argv
# It enters the directory and runs the command with exactly that environment.
# What forkvm's per-VM networking uses (TAP, veth into a netns, nftables NAT) and QEMU's vsock
# (the baseline of forkvm bench agent). A host kernel
# loads these on demand, but module autoload does not reach into this chroot: load them here,
# one by one and best effort, so a VM's network comes up as it would on a host.
for m in tun veth nf_tables nft_chain_nat nf_nat nft_masq nft_nat vhost_vsock; do /sbin/modprobe -q "$m" || echo "rig: modprobe $m failed" >&2; done
mapfile -d '' -u 3 envs
mapfile -d '' -u 4 argv
exec 3<&- 4<&-
cd -- "${argv[0]}" || {
	echo "rig: cannot enter ${argv[0]} inside L1" >&2
	exit 125
}
# env -i gives the command the caller's environment verbatim (even names bash would reject);
# $1 is exec.sh, the small bash step that looks the command up for a clear 127.
exec env -i "${envs[@]}" /bin/bash -c "$1" rig "${argv[@]:1}"
