//! Authorized operations (KIP-430), as a Kafka broker without an authorizer reports them:
//! every operation the resource type supports, as a bitfield of ACL operation codes, when the
//! client asks; `NOT_REQUESTED` otherwise. This broker has no authorizer: everyone may do
//! everything, and the answer says so.

/// What a response carries when the request did not ask (Kafka's `Integer.MIN_VALUE`).
pub const NOT_REQUESTED: i32 = i32::MIN;

// Kafka's AclOperation codes
const READ: u8 = 3;
const WRITE: u8 = 4;
const CREATE: u8 = 5;
const DELETE: u8 = 6;
const ALTER: u8 = 7;
const DESCRIBE: u8 = 8;
const CLUSTER_ACTION: u8 = 9;
const DESCRIBE_CONFIGS: u8 = 10;
const ALTER_CONFIGS: u8 = 11;
const IDEMPOTENT_WRITE: u8 = 12;

fn field(asked: bool, ops: &[u8]) -> i32 {
    if !asked {
        return NOT_REQUESTED;
    }
    ops.iter().fold(0, |f, op| f | (1 << op))
}

/// A topic's operations (Kafka's supported operations for TOPIC).
pub fn topic(asked: bool) -> i32 {
    field(
        asked,
        &[
            READ,
            WRITE,
            CREATE,
            DELETE,
            ALTER,
            DESCRIBE,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
        ],
    )
}

/// The cluster's operations (Kafka's supported operations for CLUSTER).
pub fn cluster(asked: bool) -> i32 {
    field(
        asked,
        &[
            CREATE,
            ALTER,
            DESCRIBE,
            CLUSTER_ACTION,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
            IDEMPOTENT_WRITE,
        ],
    )
}

/// A group's operations (Kafka's supported operations for GROUP).
pub fn group(asked: bool) -> i32 {
    field(asked, &[READ, DESCRIBE, DELETE])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_hold_kafkas_operation_codes() {
        assert_eq!(topic(false), NOT_REQUESTED);
        // READ..ALTER_CONFIGS without CLUSTER_ACTION (9) and IDEMPOTENT_WRITE (12)
        assert_eq!(topic(true), 0b0000_1101_1111_1000);
        assert_eq!(topic(true).count_ones(), 8);
        assert_eq!(cluster(true).count_ones(), 7);
        assert_eq!(cluster(true) & (1 << READ), 0);
        assert_eq!(group(true), (1 << 3) | (1 << 6) | (1 << 8));
    }
}
