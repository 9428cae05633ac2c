//! Conversions between [`std::time`] and protobuf `Duration` / `Timestamp`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::wkt;

/// A [`Duration`] as a protobuf duration.
pub fn to_proto_duration(d: Duration) -> wkt::Duration {
    wkt::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf duration as a [`Duration`]; negative durations become zero.
pub fn from_proto_duration(d: &wkt::Duration) -> Duration {
    if d.seconds < 0 || d.nanos < 0 {
        return Duration::ZERO;
    }
    Duration::new(d.seconds as u64, d.nanos as u32)
}

/// A [`SystemTime`] as a protobuf timestamp.
pub fn to_proto_timestamp(t: SystemTime) -> wkt::Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => wkt::Timestamp {
            seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        },
        Err(e) => {
            let d = e.duration();
            let mut seconds = -(d.as_secs() as i64);
            let mut nanos = -(d.subsec_nanos() as i32);
            if nanos < 0 {
                seconds -= 1;
                nanos += 1_000_000_000;
            }
            wkt::Timestamp { seconds, nanos }
        }
    }
}

/// A protobuf timestamp as a [`SystemTime`].
pub fn from_proto_timestamp(t: &wkt::Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(t.nanos.clamp(0, 999_999_999) as u64);
    if t.seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.seconds as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.seconds.unsigned_abs()) + nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_round_trip() {
        let d = Duration::from_millis(1500);
        let p = to_proto_duration(d);
        assert_eq!((p.seconds, p.nanos), (1, 500_000_000));
        assert_eq!(from_proto_duration(&p), d);
    }

    #[test]
    fn timestamp_round_trip_before_and_after_epoch() {
        for t in [
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            UNIX_EPOCH - Duration::from_millis(1_500),
        ] {
            assert_eq!(from_proto_timestamp(&to_proto_timestamp(t)), t);
        }
    }
}
