#!/bin/sh
# aws-elbv2-fence.sh: pgfm script.fence that moves an AWS Elastic Load
# Balancing (v2: Network or Application Load Balancer) target group from the
# failed primary to the new one, with the current `aws elbv2` CLI.
#
#   script.fence=/usr/local/bin/aws-elbv2-fence.sh %p %f
#
# pgfm runs it on the standby being promoted, before the promotion, with
# %p = the new primary's address (this node) and %f = the failed primary's
# address. It deregisters the failed primary's target, then registers the
# new primary's. Any failure exits non-zero, which aborts the promotion
# (cluster-status shows fence-failed): a standby is never promoted while
# the load balancer may still send clients to the old primary.
#
# Running it again is harmless (deregistering an absent target and
# registering a registered one both succeed), so pgfm may rerun it after an
# agent restart. See docs/loadbalancers.md.
#
# Needs: the aws CLI v2 on PATH (or AWS), credentials for the pgfm user
# (an instance profile is simplest) allowing elasticloadbalancing:
# DeregisterTargets and RegisterTargets (and DescribeTargetHealth with
# PGFM_ELBV2_WAIT=1) on the target group.
set -eu

# ---- configuration --------------------------------------------------------
# From the agent's environment (e.g. systemd Environment= or
# EnvironmentFile=), or from this file, which is read when it exists:
: "${PGFM_ELBV2_CONFIG:=/etc/pgfm/aws-elbv2-fence.conf}"
if [ -r "$PGFM_ELBV2_CONFIG" ]; then
	# shellcheck disable=SC1090
	. "$PGFM_ELBV2_CONFIG"
fi
# The target group's ARN (required).
: "${PGFM_ELBV2_TARGET_GROUP_ARN:=}"
# Node address (bind.address IP, as pgfm passes it) to target ID: the EC2
# instance ID for a target group of type instance, e.g.
#   PGFM_ELBV2_TARGETS="10.0.1.10=i-0aaaaaaaaaaaaaaaa 10.0.2.10=i-0bbbbbbbbbbbbbbbb"
# For a target group of type ip, leave an address out (or set the whole
# variable empty) to use the address itself as the target ID.
: "${PGFM_ELBV2_TARGETS:=}"
# Target group type: instance (the default) or ip.
: "${PGFM_ELBV2_TARGET_TYPE:=instance}"
# Port override (Port=...) used when the targets were registered with one.
: "${PGFM_ELBV2_PORT:=}"
# Extra aws options, e.g. "--region eu-west-1" or "--profile pgfm".
: "${PGFM_ELBV2_AWS_OPTIONS:=}"
# 1: wait until the old target has finished deregistering (connection
# draining) before letting the promotion go on. The waiter polls every 15 s;
# keep the target group's deregistration delay short and script.timeout
# long enough.
: "${PGFM_ELBV2_WAIT:=0}"
# The aws command.
: "${AWS:=aws}"
# ---------------------------------------------------------------------------

me=aws-elbv2-fence
die() {
	echo "$me: $*" >&2
	exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 NEW_PRIMARY [FAILED_PRIMARY] (script.fence=$0 %p %f)"
new=$1
failed=${2:-}
[ -n "$new" ] || die "no new primary address (%p) given"
[ -n "$PGFM_ELBV2_TARGET_GROUP_ARN" ] || die "PGFM_ELBV2_TARGET_GROUP_ARN is not set (in the environment or $PGFM_ELBV2_CONFIG)"
case $PGFM_ELBV2_TARGET_TYPE in
instance | ip) ;;
*) die "PGFM_ELBV2_TARGET_TYPE=$PGFM_ELBV2_TARGET_TYPE: give instance or ip" ;;
esac

# target_id ADDR: the target ID of a node's address.
target_id() {
	for pair in $(echo "$PGFM_ELBV2_TARGETS" | tr ',' ' '); do
		case $pair in
		"$1="*)
			echo "${pair#*=}"
			return 0
			;;
		esac
	done
	if [ "$PGFM_ELBV2_TARGET_TYPE" = ip ]; then
		echo "$1"
		return 0
	fi
	return 1
}

# target ID: the --targets argument for an ID.
target() {
	if [ -n "$PGFM_ELBV2_PORT" ]; then
		echo "Id=$1,Port=$PGFM_ELBV2_PORT"
	else
		echo "Id=$1"
	fi
}

# aws_elbv2 ARGS...: run aws elbv2 with the configured options.
aws_elbv2() {
	# shellcheck disable=SC2086 # PGFM_ELBV2_AWS_OPTIONS is a list of words
	"$AWS" $PGFM_ELBV2_AWS_OPTIONS elbv2 "$@"
}

new_id=$(target_id "$new") || die "no target ID for the new primary $new in PGFM_ELBV2_TARGETS"

# The targets to take out: the failed primary's, or, when pgfm names none,
# every mapped target but the new primary's.
old_targets=
if [ -n "$failed" ]; then
	old_id=$(target_id "$failed") || die "no target ID for the failed primary $failed in PGFM_ELBV2_TARGETS; it cannot be deregistered"
	[ "$old_id" != "$new_id" ] || die "the failed primary $failed and the new primary $new map to the same target $new_id"
	old_targets=$(target "$old_id")
else
	for pair in $(echo "$PGFM_ELBV2_TARGETS" | tr ',' ' '); do
		id=${pair#*=}
		[ "$id" = "$new_id" ] || old_targets="$old_targets $(target "$id")"
	done
fi

if [ -n "$old_targets" ]; then
	echo "$me: deregistering$(echo " $old_targets" | tr -s ' ') (failed primary ${failed:-unknown}) from $PGFM_ELBV2_TARGET_GROUP_ARN"
	# shellcheck disable=SC2086 # one word per target
	aws_elbv2 deregister-targets --target-group-arn "$PGFM_ELBV2_TARGET_GROUP_ARN" --targets $old_targets ||
		die "could not deregister the failed primary's target; not promoting"
	if [ "$PGFM_ELBV2_WAIT" = 1 ]; then
		# shellcheck disable=SC2086
		aws_elbv2 wait target-deregistered --target-group-arn "$PGFM_ELBV2_TARGET_GROUP_ARN" --targets $old_targets ||
			die "the failed primary's target did not finish deregistering; not promoting"
	fi
else
	echo "$me: no failed primary named and no other target mapped; nothing to deregister" >&2
fi

echo "$me: registering $(target "$new_id") (new primary $new) with $PGFM_ELBV2_TARGET_GROUP_ARN"
aws_elbv2 register-targets --target-group-arn "$PGFM_ELBV2_TARGET_GROUP_ARN" --targets "$(target "$new_id")" ||
	die "could not register the new primary's target; not promoting"
