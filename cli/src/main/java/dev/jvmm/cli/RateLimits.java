package dev.jvmm.cli;

import dev.jvmm.devices.ratelimit.RateLimiter;
import dev.jvmm.devices.ratelimit.TokenBucket;
import java.util.Optional;
import picocli.CommandLine;

/**
 * The command line's rate limits: {@code bps=SIZE} bytes a second (K, M, G: powers of 1024; a bare number is
 * bytes) and {@code iops=N} (disks) or {@code pps=N} (NICs, frames) operations a second, each a token bucket of one
 * second's worth that refills in a second. The API and --config-file take Firecracker's full buckets (size,
 * one_time_burst, refill_time).
 */
final class RateLimits {
    private RateLimits() {}

    /** Rates being collected from one option's key=value parts. */
    static final class Builder {
        private final String option;
        private Optional<TokenBucket.Config> bandwidth = Optional.empty(), ops = Optional.empty();

        Builder(String option) {
            this.option = option;
        }

        void bytesPerSecond(String value) {
            bandwidth = Optional.of(TokenBucket.Config.perSecond(Sizes.parse(need(value, "bps=SIZE"), 1), 0));
        }

        void opsPerSecond(String key, String value) {
            long n;
            try {
                n = Long.parseLong(need(value, key + "=N"));
            } catch (NumberFormatException e) {
                n = -1;
            }
            if (n <= 0)
                throw new CommandLine.TypeConversionException("'" + option + "': " + key
                        + " must be a positive number of operations a second, not '" + value + "'");
            ops = Optional.of(TokenBucket.Config.perSecond(n, 0));
        }

        private String need(String value, String form) {
            if (value == null || value.isEmpty())
                throw new CommandLine.TypeConversionException("'" + option + "': " + form + " needs a value");
            return value;
        }

        RateLimiter.Config build() {
            return new RateLimiter.Config(bandwidth, ops);
        }
    }
}
