//! A seeded generator of realistic trace workloads for the demo, tests and
//! benchmarks.
//!
//! The workload imitates what an OpenTelemetry collector receives from a
//! microservice shop: tens of services with a few instances each, hundreds of
//! operations, and traces that are trees of SERVER, CLIENT, INTERNAL,
//! PRODUCER and CONSUMER spans carrying semantic-convention attributes.
//! Spans come out in arrival order: a span is exported when it ends, so
//! children arrive before their parents and concurrent traces interleave.
//!
//! Everything derives from the seed: the same options give the same spans,
//! ids and timestamps. Only traces in flight are buffered, so an endless
//! stream runs in bounded memory.
//!
//! ```
//! let spans = spanlog::gen::generate(7, 1000);
//! assert_eq!(spans.len(), 1000);
//! ```

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::span::{
    AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};

// ------------------------------------------------------------------ random

/// A small, fast PRNG (xoshiro256**) seeded through splitmix64. The
/// generator needs reproducibility, not cryptographic strength.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Seeds the state from splitmix64, which cannot produce the all-zero
    /// state xoshiro would be stuck in.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, n)`; `n == 0` gives 0. Multiply-shift instead of
    /// modulo keeps the bias negligible for the small `n` used here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[lo, hi]`, both inclusive; `lo` must not exceed `hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.next_u64(),
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// A uniformly chosen element; `items` must not be empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index chosen in proportion to `weights` (the last one if all are
    /// zero).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let mut x = self.f64() * weights.iter().sum::<f64>();
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// A standard normal sample (Box-Muller; the second value is dropped).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64(); // in (0, 1], so the logarithm is finite
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A log-normal sample with the given median and shape: latencies are
    /// skewed with a long right tail, which this reproduces.
    pub fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// An exponential sample: the gap between Poisson arrivals.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }

    /// Random bits that are never zero, for ids where zero means invalid.
    fn nonzero(&mut self) -> u64 {
        loop {
            let v = self.next_u64();
            if v != 0 {
                return v;
            }
        }
    }

    /// Shuffles in place (Fisher-Yates).
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

// ------------------------------------------------------------- generator

/// 2026-01-01T00:00:00Z, a fixed start so default runs are reproducible.
const JAN_1_2026_NANOS: u64 = 1_767_225_600 * 1_000_000_000;
const US: f64 = 1e3;
const MS: f64 = 1e6;
/// Share of traces in which some span fails.
const ERROR_TRACE_RATE: f64 = 0.01;
/// Share of spans that link to a span of an earlier trace.
const LINK_RATE: f64 = 0.01;
/// Share of traces that carry a vendor `tracestate`.
const TRACE_STATE_RATE: f64 = 0.03;
/// Caps a trace so one runaway loop cannot exhaust memory.
const MAX_TRACE_SPANS: usize = 1000;
/// How many earlier roots links may point to.
const RECENT_ROOTS: usize = 256;

/// Options of the generator; Default gives a realistic mix.
#[derive(Clone, Debug)]
pub struct GenOptions {
    pub seed: u64,
    /// Number of services (default 30); operations are spread over them,
    /// 5 to 20 per service (3 to 8 topics per messaging worker).
    pub services: usize,
    /// Unix-nanosecond time of the first trace's start (default
    /// 2026-01-01T00:00:00Z).
    pub start_unix_nano: u64,
    /// Average new traces started per second of simulated time (default
    /// 200); arrivals are a Poisson process.
    pub traces_per_second: f64,
    /// Most traces in flight at once (default 64); their spans interleave in
    /// arrival order. A trace due while all slots are busy starts when one
    /// frees, like a server with a fixed worker pool; at the default rate
    /// the limit binds only in bursts. It also bounds the memory held.
    pub concurrent_traces: usize,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            seed: 1,
            services: 30,
            start_unix_nano: JAN_1_2026_NANOS,
            traces_per_second: 200.0,
            concurrent_traces: 64,
        }
    }
}

/// An endless stream of spans in collector arrival order.
///
/// Each trace is built whole when it starts, then its spans wait in a heap
/// keyed by end time. A span leaves the heap only once every trace that
/// could still end a span before it has been started, so the output is
/// exactly ordered by end time.
pub struct Generator {
    topo: Topology,
    rng: Rng,
    pending: BinaryHeap<Pending>,
    /// Spans not yet emitted, per in-flight trace number.
    unsent: HashMap<u64, usize>,
    max_in_flight: usize,
    mean_gap_ns: f64,
    next_start: u64,
    /// End time of the last span emitted.
    clock: u64,
    traces: u64,
    seq: u64,
    recent: Vec<(TraceId, SpanId)>,
    /// Next Kafka offset per topic.
    offsets: Vec<i64>,
}

impl Generator {
    /// Builds the service topology from the seed; no span exists yet.
    pub fn new(opts: GenOptions) -> Self {
        // A separate stream for the topology, so it does not shift when the
        // traffic model changes how many numbers it draws.
        let topo = Topology::build(&mut Rng::new(opts.seed ^ 0x746f_706f), opts.services);
        let rate = if opts.traces_per_second > 0.0 {
            opts.traces_per_second
        } else {
            1.0
        };
        Generator {
            offsets: vec![0; topo.topics.len()],
            topo,
            rng: Rng::new(opts.seed),
            pending: BinaryHeap::new(),
            unsent: HashMap::new(),
            max_in_flight: opts.concurrent_traces.max(1),
            mean_gap_ns: 1e9 / rate,
            next_start: opts.start_unix_nano,
            clock: opts.start_unix_nano,
            traces: 0,
            seq: 0,
            recent: Vec::with_capacity(RECENT_ROOTS),
        }
    }

    /// Up to `max` next spans in arrival order.
    pub fn next_batch(&mut self, max: usize) -> Vec<Span> {
        self.by_ref().take(max).collect()
    }

    /// Starts traces until the earliest pending span is safe to emit: no
    /// trace yet to start could end a span before it.
    fn fill(&mut self) {
        while self.unsent.len() < self.max_in_flight && self.trace_due() {
            self.start_trace();
        }
    }

    fn trace_due(&self) -> bool {
        match self.pending.peek() {
            None => true,
            Some(p) => self.next_start <= p.end,
        }
    }

    fn start_trace(&mut self) {
        let start = self.next_start.max(self.clock);
        self.next_start += self.rng.exponential(self.mean_gap_ns) as u64 + 1;
        let spans = build_trace(
            &self.topo,
            &mut self.rng,
            &mut self.offsets,
            &self.recent,
            start,
        );
        self.remember_root(&spans[0]);
        let trace = self.traces;
        self.traces += 1;
        self.unsent.insert(trace, spans.len());
        for span in spans {
            self.seq += 1;
            let (end, seq) = (span.end_time_unix_nano, self.seq);
            self.pending.push(Pending {
                end,
                seq,
                trace,
                span,
            });
        }
    }

    fn remember_root(&mut self, root: &Span) {
        let entry = (root.trace_id, root.span_id);
        if self.recent.len() < RECENT_ROOTS {
            self.recent.push(entry);
        } else {
            self.recent[(self.traces % RECENT_ROOTS as u64) as usize] = entry;
        }
    }

    fn release(&mut self, trace: u64) {
        if let Some(n) = self.unsent.get_mut(&trace) {
            *n -= 1;
            if *n == 0 {
                self.unsent.remove(&trace);
            }
        }
    }
}

impl Iterator for Generator {
    type Item = Span;

    /// Never `None`: the stream is infinite.
    fn next(&mut self) -> Option<Span> {
        self.fill();
        let p = self.pending.pop()?;
        self.clock = p.end;
        self.release(p.trace);
        Some(p.span)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

/// Convenience: the first `n` spans of the default workload with this seed.
pub fn generate(seed: u64, n: usize) -> Vec<Span> {
    let opts = GenOptions {
        seed,
        ..GenOptions::default()
    };
    Generator::new(opts).take(n).collect()
}

/// A span waiting for its arrival; the heap pops the earliest end first,
/// ties broken by creation order so the output is deterministic.
struct Pending {
    end: u64,
    seq: u64,
    trace: u64,
    span: Span,
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.end, other.seq).cmp(&(self.end, self.seq))
    }
}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.end, self.seq) == (other.end, other.seq)
    }
}
impl Eq for Pending {}

// -------------------------------------------------------------- vocabulary

/// What a service does in the call graph; it decides its operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Receives user traffic; every trace starts here.
    Entry,
    /// Business logic: calls others, queries, publishes.
    Mid,
    /// Small helpers that call little or nothing.
    Leaf,
    /// Data-access services: mostly queries.
    Data,
    /// Consumes messages; reached only through a topic.
    Worker,
}

impl Role {
    /// Calls only go to a higher tier (or a later service of the same
    /// tier), so the call graph is acyclic and every trace finite.
    fn tier(self) -> u8 {
        match self {
            Role::Entry => 0,
            Role::Mid => 1,
            Role::Worker => 2,
            Role::Leaf => 3,
            Role::Data => 4,
        }
    }
}

use Role::{Data, Entry, Leaf, Mid, Worker};

/// Ordered so that any prefix holds a mix of roles.
const SERVICES: &[(&str, Role)] = &[
    ("frontend", Entry),
    ("checkout", Mid),
    ("cart", Mid),
    ("payment", Mid),
    ("user-db", Data),
    ("product-catalog", Mid),
    ("currency", Leaf),
    ("email", Worker),
    ("shipping", Mid),
    ("order", Mid),
    ("api-gateway", Entry),
    ("recommendation", Mid),
    ("session-store", Data),
    ("inventory", Mid),
    ("fraud-detection", Worker),
    ("user", Mid),
    ("auth", Mid),
    ("quote", Leaf),
    ("order-db", Data),
    ("search", Mid),
    ("accounting", Worker),
    ("ad", Leaf),
    ("review", Mid),
    ("tax", Leaf),
    ("catalog-db", Data),
    ("mobile-bff", Entry),
    ("pricing", Mid),
    ("notification", Worker),
    ("feature-flags", Leaf),
    ("loyalty", Mid),
    ("geo", Leaf),
    ("image-resizer", Leaf),
    ("analytics", Worker),
    ("inventory-db", Data),
];

/// Names for services beyond the list above.
const EXTRA_NOUNS: &[&str] = &[
    "billing",
    "ledger",
    "invoice",
    "coupon",
    "wishlist",
    "media",
    "config",
    "audit",
    "identity",
    "warehouse",
    "routing",
    "rating",
    "export",
    "report",
    "webhook",
    "subscription",
    "refund",
    "gift-card",
    "promotion",
    "returns",
];
const EXTRA_ROLES: &[Role] = &[Mid, Leaf, Mid, Data, Worker, Mid, Leaf];

/// Resources the entry services expose to users.
const DOMAIN: &[&str] = &[
    "products",
    "orders",
    "cart",
    "users",
    "reviews",
    "recommendations",
    "checkout",
    "account",
    "search",
    "shipping",
    "wishlist",
    "payments",
];
const SUBRESOURCES: &[&str] = &[
    "items",
    "status",
    "history",
    "details",
    "summary",
    "settings",
    "events",
    "reviews",
    "images",
    "prices",
    "availability",
    "preferences",
];
/// Route templates; `{p}` is the resource, `{sub}` a sub-resource and
/// `{id}` the path parameter.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/{p}"),
    ("GET", "/api/{p}/{id}"),
    ("POST", "/api/{p}"),
    ("PUT", "/api/{p}/{id}"),
    ("DELETE", "/api/{p}/{id}"),
    ("PATCH", "/api/{p}/{id}"),
    ("GET", "/api/{p}/search"),
    ("GET", "/api/v2/{p}/{id}"),
    ("GET", "/api/{p}/{id}/{sub}"),
    ("POST", "/api/{p}/{id}/{sub}"),
];
const RPC_VERBS: &[&str] = &[
    "Get", "List", "Create", "Update", "Delete", "Search", "Validate", "Compute", "Reserve",
    "Check", "Sync",
];
const RPC_OBJECTS: &[&str] = &["", "s", "Details", "Status", "Summary", "Quote", "Stats"];
const TOPIC_NOUNS: &[&str] = &[
    "order",
    "payment",
    "user",
    "cart",
    "shipment",
    "email",
    "review",
    "inventory",
    "product",
    "invoice",
];
const TOPIC_EVENTS: &[&str] = &[
    "created",
    "updated",
    "completed",
    "failed",
    "requested",
    "shipped",
    "cancelled",
    "scored",
];
const TABLES: &[&str] = &[
    "order_items",
    "users",
    "products",
    "sessions",
    "payments",
    "shipments",
    "addresses",
    "audit_log",
    "inventory_levels",
    "prices",
    "reviews",
    "events",
    "outbox",
];
const INTERNAL_FUNCTIONS: &[&str] = &[
    "validate_request",
    "compute_total",
    "apply_discounts",
    "render_template",
    "serialize_response",
    "load_config",
    "check_permissions",
    "build_query",
    "map_results",
    "encrypt_payload",
    "score_candidates",
    "merge_results",
    "parse_payload",
    "enrich_event",
    "convert_currency",
    "reserve_stock",
    "calculate_tax",
    "sign_token",
    "verify_signature",
];
const STATUSES: &[&str] = &[
    "pending",
    "paid",
    "shipped",
    "delivered",
    "cancelled",
    "refunded",
];
const CURRENCIES: &[&str] = &["USD", "EUR", "GBP", "JPY", "CAD"];
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
    "ShopApp/4.12.0 (iPhone; iOS 17.2; Scale/3.00)",
    "okhttp/4.12.0",
    "curl/8.4.0",
];
const PUBLIC_HOST: &str = "shop.example.com";
const KAFKA_HOST: &str = "kafka-0.kafka-headless.shop.svc.cluster.local";
/// Characters Kubernetes uses in generated pod-name suffixes.
const POD_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Instrumentation categories; each maps to a scope per language.
#[derive(Clone, Copy, Debug)]
enum Cat {
    HttpServer = 0,
    HttpClient,
    RpcServer,
    RpcClient,
    Db,
    Cache,
    Messaging,
    Internal,
}

/// What an SDK language brings: its instrumentation libraries, its HTTP
/// client, its route syntax and the exceptions it throws.
struct Lang {
    name: &'static str,
    sdk_version: &'static str,
    runtime: (&'static str, &'static str),
    /// Scope name and version per `Cat`, except `Internal`, which is the
    /// service's own tracer.
    scopes: [(&'static str, &'static str); 7],
    user_agent: &'static str,
    /// How the web framework writes a path parameter.
    param: (&'static str, &'static str),
    errors: &'static [(&'static str, &'static str)],
}

const GO_HTTP: (&str, &str) = (
    "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
    "0.49.0",
);
const GO_GRPC: (&str, &str) = (
    "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc",
    "0.49.0",
);
const JAVA_GRPC: (&str, &str) = ("io.opentelemetry.grpc-1.6", "2.2.0-alpha");
const PY_GRPC: (&str, &str) = ("opentelemetry.instrumentation.grpc", "0.44b0");
const NODE_HTTP: (&str, &str) = ("@opentelemetry/instrumentation-http", "0.49.1");
const NODE_GRPC: (&str, &str) = ("@opentelemetry/instrumentation-grpc", "0.49.1");

const LANGS: &[Lang] = &[
    Lang {
        name: "go",
        sdk_version: "1.24.0",
        runtime: ("go", "go1.22.1"),
        scopes: [
            GO_HTTP,
            GO_HTTP,
            GO_GRPC,
            GO_GRPC,
            ("github.com/XSAM/otelsql", "0.29.0"),
            ("github.com/redis/go-redis/extra/redisotel", "9.5.1"),
            (
                "go.opentelemetry.io/contrib/instrumentation/github.com/IBM/sarama/otelsarama",
                "0.43.0",
            ),
        ],
        user_agent: "Go-http-client/1.1",
        param: ("{", "}"),
        errors: &[
            (
                "*net.OpError",
                "dial tcp 10.0.4.12:5432: connect: connection refused",
            ),
            ("context.deadlineExceededError", "context deadline exceeded"),
            ("*pq.Error", "pq: deadlock detected"),
        ],
    },
    Lang {
        name: "java",
        sdk_version: "1.36.0",
        runtime: ("OpenJDK Runtime Environment", "17.0.10+7-LTS"),
        scopes: [
            ("io.opentelemetry.tomcat-10.0", "2.2.0-alpha"),
            ("io.opentelemetry.java-http-client", "2.2.0-alpha"),
            JAVA_GRPC,
            JAVA_GRPC,
            ("io.opentelemetry.jdbc", "2.2.0-alpha"),
            ("io.opentelemetry.lettuce-5.1", "2.2.0-alpha"),
            ("io.opentelemetry.kafka-clients-0.11", "2.2.0-alpha"),
        ],
        user_agent: "Java-http-client/17.0.10",
        param: ("{", "}"),
        errors: &[
            ("java.net.SocketTimeoutException", "Read timed out"),
            (
                "org.postgresql.util.PSQLException",
                "ERROR: canceling statement due to statement timeout",
            ),
            (
                "java.lang.IllegalStateException",
                "Reservation expired before confirmation",
            ),
        ],
    },
    Lang {
        name: "python",
        sdk_version: "1.23.0",
        runtime: ("cpython", "3.12.2"),
        scopes: [
            ("opentelemetry.instrumentation.flask", "0.44b0"),
            ("opentelemetry.instrumentation.requests", "0.44b0"),
            PY_GRPC,
            PY_GRPC,
            ("opentelemetry.instrumentation.psycopg2", "0.44b0"),
            ("opentelemetry.instrumentation.redis", "0.44b0"),
            ("opentelemetry.instrumentation.kafka", "0.44b0"),
        ],
        user_agent: "python-requests/2.31.0",
        param: ("<", ">"),
        errors: &[
            (
                "psycopg2.OperationalError",
                "server closed the connection unexpectedly",
            ),
            (
                "requests.exceptions.ConnectionError",
                "Max retries exceeded with url",
            ),
            ("KeyError", "'currency_code'"),
        ],
    },
    Lang {
        name: "nodejs",
        sdk_version: "1.22.0",
        runtime: ("nodejs", "20.11.1"),
        scopes: [
            NODE_HTTP,
            NODE_HTTP,
            NODE_GRPC,
            NODE_GRPC,
            ("@opentelemetry/instrumentation-pg", "0.39.1"),
            ("@opentelemetry/instrumentation-ioredis", "0.38.0"),
            ("@opentelemetry/instrumentation-kafkajs", "0.1.0"),
        ],
        user_agent: "axios/1.6.7",
        param: (":", ""),
        errors: &[
            ("Error", "connect ECONNREFUSED 10.0.7.21:6379"),
            (
                "TypeError",
                "Cannot read properties of undefined (reading 'price')",
            ),
            ("TimeoutError", "Request timed out after 5000ms"),
        ],
    },
    Lang {
        name: "dotnet",
        sdk_version: "1.7.0",
        runtime: (".NET", "8.0.2"),
        scopes: [
            ("Microsoft.AspNetCore", "8.0.0"),
            ("System.Net.Http", "8.0.0"),
            ("Microsoft.AspNetCore", "8.0.0"),
            ("Grpc.Net.Client", "2.61.0"),
            ("OpenTelemetry.Instrumentation.SqlClient", "1.7.0-beta.1"),
            (
                "OpenTelemetry.Instrumentation.StackExchangeRedis",
                "1.0.0-rc9.13",
            ),
            ("Confluent.Kafka", "2.3.0"),
        ],
        user_agent: "",
        param: ("{", "}"),
        errors: &[
            ("System.TimeoutException", "The operation has timed out."),
            (
                "Microsoft.Data.SqlClient.SqlException",
                "Transaction (Process ID 64) was deadlocked on lock resources",
            ),
            (
                "System.InvalidOperationException",
                "Sequence contains no elements",
            ),
        ],
    },
];

/// Application attributes some operations add, with how values vary.
#[derive(Clone, Copy, Debug)]
enum Custom {
    Int(&'static str, u64, u64),
    /// Money: rounded to cents.
    Money(&'static str, f64),
    Ratio(&'static str),
    Bool(&'static str, f64),
    Str(&'static str, &'static [&'static str]),
}

const CUSTOMS: &[Custom] = &[
    Custom::Int("app.cart.items.count", 0, 25),
    Custom::Money("app.order.amount", 900.0),
    Custom::Bool("app.cache.hit", 0.8),
    Custom::Bool("app.user.premium", 0.15),
    Custom::Ratio("app.recommendation.score"),
    Custom::Str("app.currency", CURRENCIES),
    Custom::Int("app.page.size", 10, 100),
    Custom::Bool("app.feature_flag.new_pricing", 0.3),
    Custom::Str("app.region", &["us-east-1", "eu-west-1", "ap-southeast-2"]),
    Custom::Ratio("app.discount.ratio"),
    Custom::Int("app.retry.count", 0, 3),
];

/// SQL templates: the operation word of each, rendered by `Builder::sql`.
const SQL_OPS: &[&str] = &[
    "SELECT", "SELECT", "UPDATE", "INSERT", "DELETE", "SELECT", "SELECT",
];
const SQL_WEIGHTS: &[f64] = &[5.0, 3.0, 2.0, 2.0, 0.5, 1.0, 1.0];
const REDIS_OPS: &[&str] = &["GET", "SET", "HGETALL", "EXPIRE", "DEL", "MGET"];
const REDIS_WEIGHTS: &[f64] = &[5.0, 2.0, 2.0, 1.0, 0.5, 1.0];

// ---------------------------------------------------------------- topology

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Http,
    Grpc,
}

/// The services, their operations and how operations call each other;
/// fixed for a seed.
struct Topology {
    services: Vec<Service>,
    topics: Vec<Topic>,
    entries: Vec<usize>,
    entry_weights: Vec<f64>,
}

struct Service {
    name: String,
    role: Role,
    lang: &'static Lang,
    proto: Proto,
    port: i64,
    rpc_service: String,
    instances: Vec<Instance>,
    /// One per `Cat`.
    scopes: Vec<std::sync::Arc<Scope>>,
    db: Database,
    ops: Vec<Operation>,
    op_weights: Vec<f64>,
}

/// One running copy of a service; its resource is shared by all its spans.
struct Instance {
    resource: std::sync::Arc<Resource>,
    ip: String,
}

struct Database {
    system: &'static str,
    name: String,
    host: String,
    port: i64,
    tables: Vec<String>,
}

struct Operation {
    /// The server (or consumer) span name.
    name: String,
    endpoint: Endpoint,
    self_ns: f64,
    parallel: bool,
    custom: Vec<Custom>,
    steps: Vec<Step>,
}

enum Endpoint {
    Http {
        method: &'static str,
        route: String,
        /// The route with `{id}` standing for the parameter.
        path: String,
    },
    Rpc {
        method: String,
    },
    Consume {
        topic: usize,
    },
}

struct Topic {
    name: String,
    svc: usize,
    op: usize,
}

/// One thing an operation does, maybe skipped, maybe repeated.
struct Step {
    prob: f64,
    repeat: Repeat,
    action: Action,
}

#[derive(Clone, Copy, Debug)]
enum Repeat {
    Once,
    /// A handful, e.g. a retry or a small batch.
    Few,
    /// N+1 style loops: heavy-tailed counts that make the rare huge traces.
    Loop,
}

enum Action {
    Call {
        svc: usize,
        op: usize,
    },
    Query(Query),
    Cache {
        command: usize,
        prefix: String,
    },
    Internal {
        function: &'static str,
        steps: Vec<Step>,
    },
    Publish {
        topic: usize,
    },
}

struct Query {
    template: usize,
    table: String,
    median_ns: f64,
}

impl Topology {
    fn build(rng: &mut Rng, count: usize) -> Self {
        let mut services: Vec<Service> = (0..count.max(1)).map(|i| Service::new(rng, i)).collect();
        let topics = assign_topics(rng, &mut services);
        for svc in services.iter_mut().filter(|s| s.role != Worker) {
            svc.ops = endpoints(rng, svc);
        }
        wire(rng, &mut services, topics.len());
        for svc in &mut services {
            svc.op_weights = op_weights(&svc.ops);
        }
        let entries: Vec<usize> = (0..services.len())
            .filter(|&i| services[i].role == Entry)
            .collect();
        let entry_weights = zipf(entries.len(), 1.2);
        Topology {
            services,
            topics,
            entries,
            entry_weights,
        }
    }
}

/// Weights that favour the first items, as real traffic favours a few
/// endpoints.
fn zipf(n: usize, s: f64) -> Vec<f64> {
    (0..n).map(|k| 1.0 / ((k + 1) as f64).powf(s)).collect()
}

/// Zipf over operations, except that a health check gets a fixed share,
/// giving the single-span traces real collectors see.
fn op_weights(ops: &[Operation]) -> Vec<f64> {
    let mut w = zipf(ops.len(), 0.9);
    let total: f64 = w.iter().sum();
    for (weight, op) in w.iter_mut().zip(ops) {
        if op.name.ends_with("/healthz") {
            *weight = total * 0.06;
        }
    }
    w
}

fn service_identity(i: usize) -> (String, Role) {
    if let Some((name, role)) = SERVICES.get(i) {
        return (name.to_string(), *role);
    }
    let k = i - SERVICES.len();
    let noun = EXTRA_NOUNS[k % EXTRA_NOUNS.len()];
    let round = k / EXTRA_NOUNS.len();
    let base = if round == 0 {
        noun.to_string()
    } else {
        format!("{noun}-{}", round + 1)
    };
    let role = EXTRA_ROLES[k % EXTRA_ROLES.len()];
    let name = match role {
        Data => format!("{base}-db"),
        Worker => format!("{base}-worker"),
        _ => base,
    };
    (name, role)
}

impl Service {
    fn new(rng: &mut Rng, i: usize) -> Self {
        let (name, role) = service_identity(i);
        let lang = rng.pick(LANGS);
        let (proto, port) = protocol(rng, role);
        let version = format!(
            "{}.{}.{}",
            rng.range(1, 3),
            rng.range(0, 24),
            rng.range(0, 9)
        );
        // Entry services take all user traffic, so they run more copies.
        let n = if role == Entry {
            rng.range(3, 6)
        } else {
            rng.range(2, 5)
        };
        let instances = (0..n)
            .map(|k| instance(rng, &name, lang, &version, k))
            .collect();
        Service {
            rpc_service: format!("shop.{}.v1.{}Service", noun(&name), camel(&name)),
            scopes: scopes(lang, &name, &version)
                .into_iter()
                .map(std::sync::Arc::new)
                .collect(),
            db: Database::new(rng, &name),
            instances,
            name,
            role,
            lang,
            proto,
            port,
            ops: Vec::new(),
            op_weights: Vec::new(),
        }
    }
}

/// Entry services and workers speak HTTP; the rest half HTTP, half gRPC.
fn protocol(rng: &mut Rng, role: Role) -> (Proto, i64) {
    if !matches!(role, Entry | Worker) && rng.chance(0.5) {
        (Proto::Grpc, 50051)
    } else {
        (Proto::Http, *rng.pick(&[8080, 8000, 3000, 5000]))
    }
}

/// The resource of one instance: what the SDK's detectors report in a
/// Kubernetes pod. One instance in a few services runs a canary version.
fn instance(rng: &mut Rng, svc: &str, lang: &Lang, version: &str, k: u64) -> Instance {
    let version = if k == 1 && rng.chance(0.2) {
        format!("{version}-canary")
    } else {
        version.to_string()
    };
    let pod = format!("{svc}-{}-{}", pod_chars(rng, 10), pod_chars(rng, 5));
    let node = format!(
        "ip-10-0-{}-{}.ec2.internal",
        rng.range(1, 3),
        rng.range(10, 250)
    );
    let ip = format!("10.1.{}.{}", rng.range(0, 63), rng.range(2, 254));
    let attributes = vec![
        text("service.name", svc),
        text("service.namespace", "shop"),
        text("service.version", version),
        text("service.instance.id", uuid(rng)),
        text("deployment.environment", "production"),
        text("host.name", pod.clone()),
        text("host.arch", "amd64"),
        text("os.type", "linux"),
        int("process.pid", rng.range(1, 64) as i64),
        text("process.runtime.name", lang.runtime.0),
        text("process.runtime.version", lang.runtime.1),
        text("telemetry.sdk.name", "opentelemetry"),
        text("telemetry.sdk.language", lang.name),
        text("telemetry.sdk.version", lang.sdk_version),
        text("k8s.namespace.name", "shop"),
        text("k8s.pod.name", pod),
        text("k8s.node.name", node),
    ];
    let schema_url = "https://opentelemetry.io/schemas/1.24.0".to_string();
    let resource = Resource {
        attributes,
        dropped_attributes_count: 0,
        schema_url,
    };
    Instance {
        resource: resource.into(),
        ip,
    }
}

fn scopes(lang: &Lang, svc: &str, version: &str) -> Vec<Scope> {
    let mut out: Vec<Scope> = lang
        .scopes
        .iter()
        .map(|(name, v)| Scope {
            name: name.to_string(),
            version: v.to_string(),
            ..Scope::default()
        })
        .collect();
    // Hand-written spans come from the service's own tracer.
    out.push(Scope {
        name: svc.to_string(),
        version: version.to_string(),
        ..Scope::default()
    });
    out
}

impl Database {
    fn new(rng: &mut Rng, svc: &str) -> Self {
        let name = noun(svc).to_string();
        let (system, short, port) = if rng.chance(0.6) {
            ("postgresql", "pg", 5432)
        } else {
            ("mysql", "mysql", 3306)
        };
        let mut tables = vec![plural(&name)];
        for _ in 0..rng.range(1, 3) {
            let t = rng.pick(TABLES).to_string();
            if !tables.contains(&t) {
                tables.push(t);
            }
        }
        let host = format!("{}-{short}.shop.svc.cluster.local", noun(svc));
        Database {
            system,
            name,
            host,
            port,
            tables,
        }
    }
}

/// Gives each worker 3 to 8 consumer operations, one per topic it reads.
fn assign_topics(rng: &mut Rng, services: &mut [Service]) -> Vec<Topic> {
    let mut names: Vec<String> = TOPIC_NOUNS
        .iter()
        .flat_map(|n| TOPIC_EVENTS.iter().map(move |e| format!("{n}.{e}")))
        .collect();
    rng.shuffle(&mut names);
    let mut topics = Vec::new();
    for (svc, service) in services
        .iter_mut()
        .enumerate()
        .filter(|(_, s)| s.role == Worker)
    {
        for op in 0..rng.range(3, 8) as usize {
            let k = topics.len();
            let base = &names[k % names.len()];
            let name = if k < names.len() {
                base.clone()
            } else {
                format!("{base}.{}", k / names.len())
            };
            service.ops.push(consumer_op(rng, &name, k));
            topics.push(Topic { name, svc, op });
        }
    }
    topics
}

fn consumer_op(rng: &mut Rng, topic: &str, k: usize) -> Operation {
    Operation {
        name: format!("process {topic}"),
        endpoint: Endpoint::Consume { topic: k },
        self_ns: rng.log_normal(3.0 * MS, 0.6),
        parallel: false,
        custom: customs(rng),
        steps: Vec::new(),
    }
}

/// 5 to 20 HTTP routes or gRPC methods, distinct within the service.
fn endpoints(rng: &mut Rng, svc: &Service) -> Vec<Operation> {
    let count = rng.range(5, 20) as usize;
    let mut names = match svc.proto {
        Proto::Http => http_candidates(svc),
        Proto::Grpc => rpc_candidates(svc),
    };
    rng.shuffle(&mut names);
    names.truncate(count);
    if svc.role == Entry {
        names.push(("GET".to_string(), "/healthz".to_string()));
    }
    names
        .into_iter()
        .map(|(verb, what)| operation(rng, svc, verb, what))
        .collect()
}

fn http_candidates(svc: &Service) -> Vec<(String, String)> {
    let resources: Vec<String> = if svc.role == Entry {
        DOMAIN.iter().map(|d| d.to_string()).collect()
    } else {
        vec![plural(noun(&svc.name))]
    };
    let mut out = Vec::new();
    for p in &resources {
        for (method, route) in ROUTES {
            let route = route.replace("{p}", p);
            if route.contains("{sub}") {
                out.extend(
                    SUBRESOURCES
                        .iter()
                        .map(|s| (method.to_string(), route.replace("{sub}", s))),
                );
            } else {
                out.push((method.to_string(), route));
            }
        }
    }
    out
}

fn rpc_candidates(svc: &Service) -> Vec<(String, String)> {
    let object = camel(noun(&svc.name));
    let mut out = Vec::new();
    for verb in RPC_VERBS {
        for suffix in RPC_OBJECTS {
            out.push((String::new(), format!("{verb}{object}{suffix}")));
        }
    }
    out
}

/// An operation without steps yet: steps need every service's operations.
fn operation(rng: &mut Rng, svc: &Service, verb: String, what: String) -> Operation {
    let (name, endpoint) = endpoint(svc, &verb, what);
    Operation {
        name,
        endpoint,
        self_ns: rng.log_normal(base_self_ns(svc.role), 0.6),
        parallel: rng.chance(0.25),
        custom: customs(rng),
        steps: Vec::new(),
    }
}

/// The span name and endpoint, in the conventions of the protocol and of
/// the language's web framework.
fn endpoint(svc: &Service, verb: &str, what: String) -> (String, Endpoint) {
    if svc.proto == Proto::Grpc {
        return (
            format!("{}/{what}", svc.rpc_service),
            Endpoint::Rpc { method: what },
        );
    }
    let (open, close) = svc.lang.param;
    let route = what.replace("{id}", &format!("{open}id{close}"));
    let method = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        .into_iter()
        .find(|m| *m == verb)
        .unwrap_or("GET");
    let name = format!("{method} {route}");
    (
        name,
        Endpoint::Http {
            method,
            route,
            path: what,
        },
    )
}

/// Median own time of an operation, apart from what it waits for.
fn base_self_ns(role: Role) -> f64 {
    match role {
        Entry => 5.0 * MS,
        Mid | Worker => 2.5 * MS,
        Leaf => 1.2 * MS,
        Data => 0.8 * MS,
    }
}

/// Most operations add no application attributes; some add one or two.
fn customs(rng: &mut Rng) -> Vec<Custom> {
    let n = rng.weighted(&[6.0, 3.0, 1.0]);
    (0..n).map(|_| *rng.pick(CUSTOMS)).collect()
}

/// What a step generator needs to know about the service it works for.
struct Wiring<'a> {
    role: Role,
    deps: &'a [usize],
    op_counts: &'a [usize],
    topics: usize,
    tables: &'a [String],
    noun: &'a str,
}

/// Gives every operation its steps. Each service calls a fixed handful of
/// dependencies, as a real service has a fixed set of clients.
fn wire(rng: &mut Rng, services: &mut [Service], topics: usize) {
    let op_counts: Vec<usize> = services.iter().map(|s| s.ops.len()).collect();
    let roles: Vec<Role> = services.iter().map(|s| s.role).collect();
    for (i, svc) in services.iter_mut().enumerate() {
        let deps = dependencies(rng, &roles, i);
        let tables = svc.db.tables.clone();
        let noun = noun(&svc.name).to_string();
        let w = Wiring {
            role: svc.role,
            deps: &deps,
            op_counts: &op_counts,
            topics,
            tables: &tables,
            noun: &noun,
        };
        for op in &mut svc.ops {
            let n = rng.weighted(step_counts(w.role));
            op.steps = (0..n).map(|_| step(rng, &w, true)).collect();
        }
    }
}

/// Services a service calls. Entry services fan out to business services;
/// those call at most two peers, so call chains stay shallow, and lean on
/// helpers and data services.
fn dependencies(rng: &mut Rng, roles: &[Role], i: usize) -> Vec<usize> {
    let rank = |j: usize| (roles[j].tier(), j);
    let later = |role: fn(Role) -> bool| -> Vec<usize> {
        (0..roles.len())
            .filter(|&j| rank(j) > rank(i) && role(roles[j]))
            .collect()
    };
    let (peers, helpers) = match roles[i] {
        Entry => (rng.range(3, 6), rng.range(0, 2)),
        Mid => (rng.range(0, 2), rng.range(1, 2)),
        Worker => (rng.range(0, 1), rng.range(1, 2)),
        Leaf | Data => (0, rng.range(0, 1)),
    };
    let mut deps = sample(rng, later(|r| r == Mid), peers);
    deps.extend(sample(rng, later(|r| matches!(r, Leaf | Data)), helpers));
    deps
}

fn sample(rng: &mut Rng, mut items: Vec<usize>, n: u64) -> Vec<usize> {
    rng.shuffle(&mut items);
    items.truncate(n as usize);
    items
}

/// Weights of how many steps an operation has (index = count).
fn step_counts(role: Role) -> &'static [f64] {
    match role {
        Entry => &[0.0, 2.0, 3.0, 3.0, 2.0, 1.0],
        Mid => &[0.5, 3.0, 4.0, 3.0, 2.0, 1.0],
        Leaf => &[3.0, 3.0, 1.0],
        Data => &[0.0, 3.0, 3.0, 1.0],
        Worker => &[0.0, 2.0, 3.0, 2.0, 1.0],
    }
}

/// Weights of call, query, cache, internal and publish steps per role.
fn action_weights(w: &Wiring, allow_internal: bool) -> [f64; 5] {
    let mut a = match w.role {
        Entry => [6.0, 0.0, 1.5, 1.5, 0.0],
        Mid => [3.5, 3.0, 1.0, 1.5, 2.0],
        Leaf => [0.5, 0.5, 3.0, 4.0, 0.0],
        Data => [0.0, 8.0, 2.0, 0.5, 0.0],
        Worker => [3.0, 4.0, 1.0, 2.0, 0.0],
    };
    if w.deps.is_empty() {
        a[0] = 0.0;
    }
    if !allow_internal {
        a[3] = 0.0;
    }
    if w.topics == 0 {
        a[4] = 0.0;
    }
    a
}

fn step(rng: &mut Rng, w: &Wiring, allow_internal: bool) -> Step {
    match rng.weighted(&action_weights(w, allow_internal)) {
        0 => call_step(rng, w),
        1 => query_step(rng, w),
        2 => cache_step(rng, w),
        3 => internal_step(rng, w),
        _ => publish_step(rng, w),
    }
}

fn call_step(rng: &mut Rng, w: &Wiring) -> Step {
    let svc = *rng.pick(w.deps);
    let op = rng.below(w.op_counts[svc] as u64) as usize;
    // No loops of calls: N+1 loops of queries make the heavy tail, and
    // a looped call would multiply whole subtrees.
    let repeat = repeat(rng, 0.1, 0.0);
    Step {
        prob: 0.7 + 0.3 * rng.f64(),
        repeat,
        action: Action::Call { svc, op },
    }
}

fn query_step(rng: &mut Rng, w: &Wiring) -> Step {
    let template = rng.weighted(SQL_WEIGHTS);
    let table = rng.pick(w.tables).clone();
    let median_ns = rng.log_normal(2.0 * MS, 0.8);
    let action = Action::Query(Query {
        template,
        table,
        median_ns,
    });
    Step {
        prob: 0.8 + 0.2 * rng.f64(),
        repeat: repeat(rng, 0.2, 0.08),
        action,
    }
}

fn cache_step(rng: &mut Rng, w: &Wiring) -> Step {
    let command = rng.weighted(REDIS_WEIGHTS);
    let action = Action::Cache {
        command,
        prefix: w.noun.to_string(),
    };
    Step {
        prob: 0.9,
        repeat: repeat(rng, 0.15, 0.0),
        action,
    }
}

fn publish_step(rng: &mut Rng, w: &Wiring) -> Step {
    let topic = rng.below(w.topics as u64) as usize;
    let action = Action::Publish { topic };
    Step {
        prob: 0.4 + 0.5 * rng.f64(),
        repeat: Repeat::Once,
        action,
    }
}

/// Hand-instrumented business logic, wrapping up to two lower steps.
fn internal_step(rng: &mut Rng, w: &Wiring) -> Step {
    let n = rng.weighted(&[2.0, 3.0, 1.0]);
    let steps = (0..n).map(|_| step(rng, w, false)).collect();
    let function = *rng.pick(INTERNAL_FUNCTIONS);
    let action = Action::Internal { function, steps };
    Step {
        prob: 1.0,
        repeat: repeat(rng, 0.05, 0.0),
        action,
    }
}

fn repeat(rng: &mut Rng, few: f64, looped: f64) -> Repeat {
    match rng.weighted(&[1.0 - few - looped, few, looped]) {
        0 => Repeat::Once,
        1 => Repeat::Few,
        _ => Repeat::Loop,
    }
}

// ------------------------------------------------------------ trace build

/// Which instance of which service is doing the work.
#[derive(Clone, Copy, Debug)]
struct Where {
    svc: usize,
    inst: usize,
}

/// Who sent the request a server span handles, and the id it asked about.
#[derive(Clone, Copy, Debug)]
enum Caller {
    User,
    Service { from: Where, id: u64 },
}

/// What `Builder::open` needs besides position and time.
struct Head {
    kind: SpanKind,
    cat: Cat,
    name: String,
    attrs: Vec<KeyValue>,
}

impl Head {
    fn new(kind: SpanKind, cat: Cat, name: String, attrs: Vec<KeyValue>) -> Self {
        Head {
            kind,
            cat,
            name,
            attrs,
        }
    }
}

/// Builds one trace: the whole tree with timestamps, root first, every
/// child strictly inside its parent's time window.
struct Builder<'a> {
    topo: &'a Topology,
    rng: &'a mut Rng,
    offsets: &'a mut [i64],
    trace_id: TraceId,
    trace_state: String,
    /// The object the user asked about; most ids in the trace repeat it,
    /// as a real request's id flows through paths, keys and queries.
    entity: u64,
    user_ip: String,
    user_agent: &'static str,
    spans: Vec<Span>,
    /// Parent index and service of each span.
    meta: Vec<(Option<usize>, usize)>,
}

fn build_trace(
    topo: &Topology,
    rng: &mut Rng,
    offsets: &mut [i64],
    recent: &[(TraceId, SpanId)],
    start: u64,
) -> Vec<Span> {
    let mut b = Builder::new(topo, rng, offsets);
    let svc = topo.entries[b.rng.weighted(&topo.entry_weights)];
    let op = b.rng.weighted(&topo.services[svc].op_weights);
    let at = b.instance(svc);
    b.serve(at, op, None, start, Caller::User);
    if b.rng.chance(ERROR_TRACE_RATE) {
        b.fail_somewhere();
    }
    b.add_links(recent);
    b.spans
}

impl<'a> Builder<'a> {
    fn new(topo: &'a Topology, rng: &'a mut Rng, offsets: &'a mut [i64]) -> Self {
        let trace_id =
            TraceId((((rng.nonzero() as u128) << 64) | rng.next_u64() as u128).to_be_bytes());
        let trace_state = if rng.chance(TRACE_STATE_RATE) {
            format!("rojo={:016x},congo=t61rcWkgMzE", rng.next_u64())
        } else {
            String::new()
        };
        let entity = skewed_id(rng);
        let user_ip = format!(
            "{}.{}.{}.{}",
            rng.range(24, 223),
            rng.range(0, 255),
            rng.range(0, 255),
            rng.range(1, 254)
        );
        let user_agent = *rng.pick(BROWSERS);
        Builder {
            topo,
            rng,
            offsets,
            trace_id,
            trace_state,
            entity,
            user_ip,
            user_agent,
            spans: Vec::new(),
            meta: Vec::new(),
        }
    }

    fn instance(&mut self, svc: usize) -> Where {
        let inst = self
            .rng
            .below(self.topo.services[svc].instances.len() as u64) as usize;
        Where { svc, inst }
    }

    fn open(&mut self, at: Where, parent: Option<usize>, start: u64, head: Head) -> usize {
        let svc = &self.topo.services[at.svc];
        self.spans.push(Span {
            trace_id: self.trace_id,
            span_id: SpanId(self.rng.nonzero().to_be_bytes()),
            parent_span_id: parent.map(|p| self.spans[p].span_id),
            trace_state: self.trace_state.clone(),
            flags: 1,
            name: head.name,
            kind: head.kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start,
            attributes: head.attrs,
            resource: svc.instances[at.inst].resource.clone(),
            scope: svc.scopes[head.cat as usize].clone(),
            ..Span::default()
        });
        self.meta.push((parent, at.svc));
        self.spans.len() - 1
    }

    fn close(&mut self, idx: usize, end: u64) {
        self.spans[idx].end_time_unix_nano = end;
    }

    /// Network latency of one hop.
    fn net(&mut self) -> u64 {
        self.rng.log_normal(600.0 * US, 0.6) as u64 + 1
    }

    /// Time between two consecutive steps of the same operation.
    fn gap(&mut self) -> u64 {
        self.rng.log_normal(50.0 * US, 0.8) as u64 + 1
    }

    /// The trace's entity most of the time, another id otherwise.
    fn request_id(&mut self) -> u64 {
        if self.rng.chance(0.7) {
            self.entity
        } else {
            skewed_id(self.rng)
        }
    }

    /// A server or consumer span running the operation's steps.
    fn serve(
        &mut self,
        at: Where,
        op: usize,
        parent: Option<usize>,
        start: u64,
        caller: Caller,
    ) -> u64 {
        let topo = self.topo;
        let o = &topo.services[at.svc].ops[op];
        let mut head = self.server_head(at, o, caller);
        for c in &o.custom {
            let kv = self.custom(*c);
            head.attrs.push(kv);
        }
        let idx = self.open(at, parent, start, head);
        let end = self.work(at, idx, &o.steps, o.parallel, o.self_ns, start);
        self.close(idx, end);
        end
    }

    /// Own time split around the children: some before, the rest after.
    fn work(
        &mut self,
        at: Where,
        parent: usize,
        steps: &'a [Step],
        parallel: bool,
        self_ns: f64,
        start: u64,
    ) -> u64 {
        let own = self.rng.log_normal(self_ns, 0.9);
        let begin = start + (own * 0.4) as u64 + 1;
        let done = if parallel {
            self.fan_out(at, parent, steps, begin)
        } else {
            self.sequence(at, parent, steps, begin)
        };
        done + (own * 0.6) as u64 + 1
    }

    fn sequence(&mut self, at: Where, parent: usize, steps: &'a [Step], start: u64) -> u64 {
        let mut cursor = start;
        for (i, s) in steps.iter().enumerate() {
            if i > 0 {
                cursor += self.gap();
            }
            cursor = self.step(at, parent, s, cursor);
        }
        cursor
    }

    /// Steps issued concurrently, each a little after the previous.
    fn fan_out(&mut self, at: Where, parent: usize, steps: &'a [Step], start: u64) -> u64 {
        let mut end = start;
        let mut issue = start;
        for s in steps {
            issue += self.gap() / 4;
            end = end.max(self.step(at, parent, s, issue));
        }
        end
    }

    fn step(&mut self, at: Where, parent: usize, step: &'a Step, start: u64) -> u64 {
        if !self.rng.chance(step.prob) {
            return start;
        }
        let mut cursor = start;
        for i in 0..self.times(step.repeat) {
            if self.spans.len() >= MAX_TRACE_SPANS {
                break;
            }
            if i > 0 {
                cursor += self.gap();
            }
            cursor = self.act(at, parent, &step.action, cursor);
        }
        cursor
    }

    fn times(&mut self, repeat: Repeat) -> usize {
        match repeat {
            Repeat::Once => 1,
            Repeat::Few => self.rng.range(2, 5) as usize,
            Repeat::Loop => self.rng.log_normal(8.0, 1.0).round().clamp(2.0, 250.0) as usize,
        }
    }

    fn act(&mut self, at: Where, parent: usize, action: &'a Action, start: u64) -> u64 {
        match action {
            Action::Call { svc, op } => self.call(at, parent, *svc, *op, start),
            Action::Query(q) => self.query(at, parent, q, start),
            Action::Cache { command, prefix } => self.cache(at, parent, *command, prefix, start),
            Action::Internal { function, steps } => {
                self.internal(at, parent, function, steps, start)
            }
            Action::Publish { topic } => self.publish(at, parent, *topic, start),
        }
    }

    /// A CLIENT span around the callee's SERVER span, one hop each way.
    fn call(&mut self, from: Where, parent: usize, svc: usize, op: usize, start: u64) -> u64 {
        let topo = self.topo;
        let callee = &topo.services[svc];
        let id = self.request_id();
        let head = client_head(callee, &callee.ops[op], id);
        let idx = self.open(from, Some(parent), start, head);
        let to = self.instance(svc);
        let served = start + self.net();
        let end = self.serve(to, op, Some(idx), served, Caller::Service { from, id }) + self.net();
        self.close(idx, end);
        end
    }

    fn query(&mut self, at: Where, parent: usize, q: &Query, start: u64) -> u64 {
        let topo = self.topo;
        let db = &topo.services[at.svc].db;
        let statement = self.sql(q.template, &q.table);
        let op = SQL_OPS[q.template];
        let attrs = vec![
            text("db.system", db.system),
            text("db.name", db.name.as_str()),
            text("db.statement", statement),
            text("db.operation", op),
            text("db.sql.table", q.table.as_str()),
            text("server.address", db.host.as_str()),
            int("server.port", db.port),
        ];
        let head = Head::new(
            SpanKind::Client,
            Cat::Db,
            format!("{op} {}", q.table),
            attrs,
        );
        let idx = self.open(at, Some(parent), start, head);
        let end = start + self.rng.log_normal(q.median_ns, 0.9) as u64 + 1;
        self.close(idx, end);
        end
    }

    fn cache(&mut self, at: Where, parent: usize, command: usize, prefix: &str, start: u64) -> u64 {
        let statement = self.redis(command, prefix);
        let attrs = vec![
            text("db.system", "redis"),
            text("db.statement", statement),
            int("db.redis.database_index", 0),
            text("server.address", "redis-master.shop.svc.cluster.local"),
            int("server.port", 6379),
        ];
        let head = Head::new(
            SpanKind::Client,
            Cat::Cache,
            REDIS_OPS[command].to_string(),
            attrs,
        );
        let idx = self.open(at, Some(parent), start, head);
        let end = start + self.rng.log_normal(500.0 * US, 0.7) as u64 + 1;
        self.close(idx, end);
        end
    }

    fn internal(
        &mut self,
        at: Where,
        parent: usize,
        function: &str,
        steps: &'a [Step],
        start: u64,
    ) -> u64 {
        let svc = &self.topo.services[at.svc];
        let mut attrs = vec![
            text("code.function", function),
            text("code.namespace", format!("shop.{}", noun(&svc.name))),
        ];
        if svc.lang.name == "java" {
            attrs.push(int("thread.id", self.rng.range(20, 220) as i64));
            attrs.push(text(
                "thread.name",
                format!("http-nio-{}-exec-{}", svc.port, self.rng.range(1, 200)),
            ));
        }
        let head = Head::new(
            SpanKind::Internal,
            Cat::Internal,
            function.to_string(),
            attrs,
        );
        let idx = self.open(at, Some(parent), start, head);
        let end = self.work(at, idx, steps, false, 500.0 * US, start);
        self.close(idx, end);
        end
    }

    /// A PRODUCER span with the consumer's processing nested inside it, so
    /// every child lies within its parent's window (as tests and queries
    /// assume), as with a publish acknowledged after processing.
    fn publish(&mut self, at: Where, parent: usize, topic: usize, start: u64) -> u64 {
        let topo = self.topo;
        let t = &topo.topics[topic];
        let key = self.request_id();
        let attrs = vec![
            text("messaging.system", "kafka"),
            text("messaging.operation", "publish"),
            text("messaging.destination.name", t.name.as_str()),
            text("messaging.kafka.message.key", key.to_string()),
            text("server.address", KAFKA_HOST),
            int("server.port", 9092),
        ];
        let head = Head::new(
            SpanKind::Producer,
            Cat::Messaging,
            format!("publish {}", t.name),
            attrs,
        );
        let idx = self.open(at, Some(parent), start, head);
        let own_end = start + self.rng.log_normal(400.0 * US, 0.6) as u64 + 1;
        let delivered = start + self.rng.log_normal(2.0 * MS, 0.8) as u64 + 1;
        let to = self.instance(t.svc);
        let done = self.serve(
            to,
            t.op,
            Some(idx),
            delivered,
            Caller::Service { from: at, id: key },
        );
        let end = own_end.max(done + 1);
        self.close(idx, end);
        end
    }
}

// ------------------------------------------------------------- attributes

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue::new(key, AnyValue::String(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue::new(key, AnyValue::Int(value))
}

/// Ids skewed toward small values, as popular products and old users are
/// asked about more often.
fn skewed_id(rng: &mut Rng) -> u64 {
    1 + (rng.f64().powi(3) * 250_000.0) as u64
}

fn ok_status(method: &str) -> i64 {
    match method {
        "POST" => 201,
        "DELETE" => 204,
        _ => 200,
    }
}

/// The callee-side client span: named and attributed as the caller's
/// HTTP or gRPC instrumentation would.
fn client_head(callee: &Service, op: &Operation, id: u64) -> Head {
    let peer = vec![
        text("server.address", callee.name.as_str()),
        int("server.port", callee.port),
    ];
    match &op.endpoint {
        Endpoint::Http { method, path, .. } => {
            let attrs = http_client_attrs(callee, method, path, id, peer);
            Head::new(SpanKind::Client, Cat::HttpClient, method.to_string(), attrs)
        }
        Endpoint::Rpc { method } => {
            let attrs = rpc_attrs(&callee.rpc_service, method, peer);
            Head::new(SpanKind::Client, Cat::RpcClient, op.name.clone(), attrs)
        }
        // Topics are reached through `publish`, never called; kept total.
        Endpoint::Consume { .. } => {
            Head::new(SpanKind::Client, Cat::RpcClient, op.name.clone(), peer)
        }
    }
}

fn http_client_attrs(
    callee: &Service,
    method: &str,
    path: &str,
    id: u64,
    mut peer: Vec<KeyValue>,
) -> Vec<KeyValue> {
    let path = path.replace("{id}", &id.to_string());
    let url = format!("http://{}:{}{path}", callee.name, callee.port);
    let mut attrs = vec![text("http.request.method", method), text("url.full", url)];
    attrs.append(&mut peer);
    attrs.push(text("network.protocol.version", "1.1"));
    attrs.push(int("http.response.status_code", ok_status(method)));
    attrs
}

fn rpc_attrs(service: &str, method: &str, mut tail: Vec<KeyValue>) -> Vec<KeyValue> {
    let mut attrs = vec![
        text("rpc.system", "grpc"),
        text("rpc.service", service),
        text("rpc.method", method),
    ];
    attrs.append(&mut tail);
    attrs.push(int("rpc.grpc.status_code", 0));
    attrs
}

impl Builder<'_> {
    fn server_head(&mut self, at: Where, op: &Operation, caller: Caller) -> Head {
        let svc = &self.topo.services[at.svc];
        let (client_ip, agent) = self.peer(caller);
        match &op.endpoint {
            Endpoint::Http {
                method,
                route,
                path,
            } => {
                let attrs =
                    self.http_server_attrs(svc, (method, route, path), caller, client_ip, agent);
                Head::new(SpanKind::Server, Cat::HttpServer, op.name.clone(), attrs)
            }
            Endpoint::Rpc { method } => {
                let tail = vec![
                    text("server.address", svc.name.as_str()),
                    int("server.port", svc.port),
                    text("client.address", client_ip),
                ];
                let attrs = rpc_attrs(&svc.rpc_service, method, tail);
                Head::new(SpanKind::Server, Cat::RpcServer, op.name.clone(), attrs)
            }
            Endpoint::Consume { topic } => {
                let attrs = self.consumer_attrs(&svc.name, *topic, caller);
                Head::new(SpanKind::Consumer, Cat::Messaging, op.name.clone(), attrs)
            }
        }
    }

    /// The caller's address and HTTP user agent as the server sees them.
    fn peer(&self, caller: Caller) -> (String, &'static str) {
        match caller {
            Caller::User => (self.user_ip.clone(), self.user_agent),
            Caller::Service { from, .. } => {
                let svc = &self.topo.services[from.svc];
                (svc.instances[from.inst].ip.clone(), svc.lang.user_agent)
            }
        }
    }

    fn http_server_attrs(
        &mut self,
        svc: &Service,
        (method, route, path): (&str, &str, &str),
        caller: Caller,
        client_ip: String,
        agent: &str,
    ) -> Vec<KeyValue> {
        let (id, public) = match caller {
            Caller::User => (self.entity, true),
            Caller::Service { id, .. } => (id, false),
        };
        let mut attrs = vec![
            text("http.request.method", method),
            text("http.route", route),
            text("url.path", path.replace("{id}", &id.to_string())),
            text("url.scheme", if public { "https" } else { "http" }),
            text(
                "server.address",
                if public {
                    PUBLIC_HOST
                } else {
                    svc.name.as_str()
                },
            ),
            int("server.port", if public { 443 } else { svc.port }),
            text("client.address", client_ip),
            text("network.protocol.version", if public { "2" } else { "1.1" }),
        ];
        if !agent.is_empty() {
            attrs.push(text("user_agent.original", agent));
        }
        attrs.push(int(
            "http.response.status_code",
            self.response_status(method, public),
        ));
        attrs
    }

    /// Users sometimes get a 4xx; that is not an error of the server, so
    /// the span status stays unset. Internal calls succeed unless failed.
    fn response_status(&mut self, method: &str, public: bool) -> i64 {
        if public && self.rng.chance(0.03) {
            return *self.rng.pick(&[400, 401, 403, 404, 404, 404, 429]);
        }
        ok_status(method)
    }

    fn consumer_attrs(&mut self, group: &str, topic: usize, caller: Caller) -> Vec<KeyValue> {
        let key = match caller {
            Caller::Service { id, .. } => id,
            Caller::User => self.entity,
        };
        let offset = self.offsets[topic];
        self.offsets[topic] += 1;
        vec![
            text("messaging.system", "kafka"),
            text("messaging.operation", "process"),
            text(
                "messaging.destination.name",
                self.topo.topics[topic].name.as_str(),
            ),
            text("messaging.kafka.consumer.group", group),
            int("messaging.kafka.destination.partition", (key % 12) as i64),
            int("messaging.kafka.message.offset", offset),
            text("messaging.kafka.message.key", key.to_string()),
        ]
    }

    fn custom(&mut self, c: Custom) -> KeyValue {
        let r = &mut *self.rng;
        match c {
            Custom::Int(k, lo, hi) => int(k, r.range(lo, hi) as i64),
            Custom::Money(k, max) => KeyValue::new(
                k,
                AnyValue::Double((r.f64() * max * 100.0).round() / 100.0 + 1.0),
            ),
            Custom::Ratio(k) => KeyValue::new(k, AnyValue::Double(r.f64())),
            Custom::Bool(k, p) => KeyValue::new(k, AnyValue::Bool(r.chance(p))),
            Custom::Str(k, values) => text(k, *r.pick(values)),
        }
    }

    /// A statement with literal values, as instrumentations that do not
    /// sanitize report it.
    fn sql(&mut self, template: usize, table: &str) -> String {
        let id = self.request_id();
        let r = &mut *self.rng;
        match template {
            0 => format!("SELECT * FROM {table} WHERE id = {id}"),
            1 => format!(
                "SELECT id, name, price, updated_at FROM {table} WHERE user_id = {id} ORDER BY created_at DESC LIMIT {}",
                r.pick(&[10, 20, 50])
            ),
            2 => format!("UPDATE {table} SET status = '{}', updated_at = NOW() WHERE id = {id}", r.pick(STATUSES)),
            3 => format!(
                "INSERT INTO {table} (id, user_id, amount, currency, created_at) VALUES ({}, {id}, {:.2}, '{}', NOW())",
                r.range(1_000_000, 99_999_999),
                r.f64() * 500.0 + 1.0,
                r.pick(CURRENCIES)
            ),
            4 => format!("DELETE FROM {table} WHERE id = {id} AND expires_at < NOW()"),
            5 => format!("SELECT COUNT(*) FROM {table} WHERE user_id = {id} AND status = '{}'", r.pick(STATUSES)),
            _ => format!("SELECT id, quantity FROM {table} WHERE id IN ({id}, {}, {})", skewed_id(r), skewed_id(r)),
        }
    }

    fn redis(&mut self, command: usize, prefix: &str) -> String {
        let id = self.request_id();
        match command {
            0 => format!("GET {prefix}:{id}"),
            1 => format!("SET {prefix}:{id} ?"),
            2 => format!("HGETALL {prefix}:{id}"),
            3 => format!("EXPIRE {prefix}:{id} 3600"),
            4 => format!("DEL {prefix}:{id}"),
            _ => format!(
                "MGET {prefix}:{id} {prefix}:{} {prefix}:{}",
                skewed_id(self.rng),
                skewed_id(self.rng)
            ),
        }
    }
}

// ----------------------------------------------------------- errors, links

impl Builder<'_> {
    /// Fails one span (any but the root, when there is more than one) and
    /// lets the failure climb: a client always sees its callee's failure,
    /// other spans pass it on only sometimes.
    fn fail_somewhere(&mut self) {
        let n = self.spans.len();
        let idx = if n == 1 {
            0
        } else {
            1 + self.rng.below(n as u64 - 1) as usize
        };
        self.raise(idx);
        let mut child = idx;
        while let Some(p) = self.meta[child].0 {
            if self.spans[p].kind != SpanKind::Client && !self.rng.chance(0.6) {
                break;
            }
            let message = self.spans[child].status.message.clone();
            set_error(&mut self.spans[p], message);
            child = p;
        }
    }

    /// Marks a span failed with an `exception` event as SDKs record it.
    fn raise(&mut self, idx: usize) {
        let svc = &self.topo.services[self.meta[idx].1];
        let (ty, msg) = *self.rng.pick(svc.lang.errors);
        let stack = stacktrace(self.rng, svc, ty, msg);
        let span = &mut self.spans[idx];
        let at = span.start_time_unix_nano
            + (span.duration_nanos() as f64 * (0.5 + 0.5 * self.rng.f64())) as u64;
        let mut attributes = vec![
            text("exception.type", ty),
            text("exception.message", msg),
            text("exception.stacktrace", stack),
        ];
        if matches!(svc.lang.name, "java" | "dotnet") {
            attributes.push(KeyValue::new("exception.escaped", AnyValue::Bool(true)));
        }
        let time_unix_nano = at.min(span.end_time_unix_nano);
        span.events.push(Event {
            time_unix_nano,
            name: "exception".into(),
            attributes,
            dropped_attributes_count: 0,
        });
        span.attributes.push(text("error.type", ty));
        set_error(span, msg.to_string());
    }

    /// Links a few spans to roots of earlier traces, as batch jobs and
    /// fan-in consumers do.
    fn add_links(&mut self, recent: &[(TraceId, SpanId)]) {
        if recent.is_empty() {
            return;
        }
        for i in 0..self.spans.len() {
            if !self.rng.chance(LINK_RATE) {
                continue;
            }
            let (trace_id, span_id) = *self.rng.pick(recent);
            let attributes = if self.rng.chance(0.5) {
                vec![text("opentracing.ref_type", "follows_from")]
            } else {
                Vec::new()
            };
            let link = Link {
                trace_id,
                span_id,
                trace_state: String::new(),
                flags: 1,
                attributes,
                dropped_attributes_count: 0,
            };
            self.spans[i].links.push(link);
        }
    }
}

/// Sets the error status and turns success codes into server errors.
fn set_error(span: &mut Span, message: String) {
    span.status = Status {
        code: StatusCode::Error,
        message,
    };
    for kv in &mut span.attributes {
        match kv.key.as_str() {
            "http.response.status_code" => kv.value = AnyValue::Int(500),
            "rpc.grpc.status_code" => kv.value = AnyValue::Int(13),
            _ => {}
        }
    }
}

/// A stack trace in the language's own format, varying in line numbers.
fn stacktrace(rng: &mut Rng, svc: &Service, ty: &str, msg: &str) -> String {
    let (name, class) = (svc.name.as_str(), camel(&svc.name));
    let (line, line2) = (rng.range(20, 900), rng.range(20, 400));
    match svc.lang.name {
        "java" => format!(
            "{ty}: {msg}\n\tat com.shop.{pkg}.{class}Service.handle({class}Service.java:{line})\n\tat com.shop.{pkg}.{class}Controller.process({class}Controller.java:{line2})\n\tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)\n\tat java.base/java.lang.Thread.run(Thread.java:840)",
            pkg = noun(name).replace('-', "")
        ),
        "go" => format!(
            "goroutine {} [running]:\nmain.(*{class}Server).Handle(...)\n\t/app/{name}/server.go:{line} +0x{:x}\nnet/http.HandlerFunc.ServeHTTP(...)\n\t/usr/local/go/src/net/http/server.go:2166 +0x29\ncreated by net/http.(*Server).Serve in goroutine 1\n\t/usr/local/go/src/net/http/server.go:3285 +0x4b4",
            rng.range(20, 5000),
            rng.range(0x20, 0x400)
        ),
        "python" => format!(
            "Traceback (most recent call last):\n  File \"/app/{name}/handlers.py\", line {line}, in handle\n    return service.process(request)\n  File \"/app/{name}/service.py\", line {line2}, in process\n    raise {ty}({msg:?})\n{ty}: {msg}"
        ),
        "nodejs" => format!(
            "{ty}: {msg}\n    at {class}Service.handle (/usr/src/app/src/{name}.js:{line}:{})\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\n    at async /usr/src/app/src/server.js:{line2}:7",
            rng.range(5, 60)
        ),
        _ => format!(
            "{ty}: {msg}\n   at Shop.{class}.{class}Service.HandleAsync() in /src/{class}/{class}Service.cs:line {line}\n   at Shop.{class}.Controllers.{class}Controller.Post() in /src/{class}/Controllers/{class}Controller.cs:line {line2}\n   at Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.TaskOfIActionResultExecutor.Execute(ActionContext actionContext)"
        ),
    }
}

// ---------------------------------------------------------------- naming

/// The domain word of a service name: "product-catalog" -> "product".
fn noun(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

fn plural(word: &str) -> String {
    if word.ends_with('s') {
        word.to_string()
    } else if let Some(stem) = word.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{word}s")
    }
}

/// "product-catalog" -> "ProductCatalog".
fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn pod_chars(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| *rng.pick(POD_ALPHABET) as char).collect()
}

/// A version-4 UUID in its usual text form.
fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    let a = (a & !0xF000) | 0x4000;
    let b = (b & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFFF,
        b >> 48,
        b & 0xFFFF_FFFF_FFFF
    )
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    /// Traces whose root was emitted; the root ends last, so these are whole.
    fn complete(spans: &[Span]) -> HashMap<TraceId, Vec<&Span>> {
        let roots: HashSet<TraceId> = spans
            .iter()
            .filter(|s| s.parent_span_id.is_none())
            .map(|s| s.trace_id)
            .collect();
        let mut traces: HashMap<TraceId, Vec<&Span>> = HashMap::new();
        for s in spans.iter().filter(|s| roots.contains(&s.trace_id)) {
            traces.entry(s.trace_id).or_default().push(s);
        }
        traces
    }

    fn is_error(trace: &[&Span]) -> bool {
        trace.iter().any(|s| s.status.code == StatusCode::Error)
    }

    #[test]
    fn same_seed_gives_same_spans_and_another_seed_does_not() {
        let a = generate(42, 3000);
        assert_eq!(a, generate(42, 3000));
        let b = generate(43, 3000);
        assert_ne!(a, b);
        let ids: HashSet<TraceId> = a.iter().map(|s| s.trace_id).collect();
        assert!(b.iter().all(|s| !ids.contains(&s.trace_id)));
    }

    #[test]
    fn every_span_is_valid_and_nested_in_its_parent() {
        let spans = generate(5, 20_000);
        for s in &spans {
            assert!(!s.trace_id.is_zero() && !s.span_id.is_zero());
            assert!(s.end_time_unix_nano > s.start_time_unix_nano);
            assert!(s.start_time_unix_nano >= JAN_1_2026_NANOS);
            assert_eq!(s.flags, 1);
            assert!(s.service_name().is_some() && !s.scope.name.is_empty());
        }
        for trace in complete(&spans).values() {
            let by_id: HashMap<SpanId, &Span> = trace.iter().map(|s| (s.span_id, *s)).collect();
            assert_eq!(by_id.len(), trace.len(), "span ids are unique");
            for s in trace {
                let Some(pid) = s.parent_span_id else {
                    continue;
                };
                let p = by_id[&pid];
                assert!(p.start_time_unix_nano < s.start_time_unix_nano);
                assert!(s.end_time_unix_nano < p.end_time_unix_nano);
            }
            assert_eq!(
                trace.iter().filter(|s| s.parent_span_id.is_none()).count(),
                1
            );
        }
    }

    #[test]
    fn spans_arrive_when_they_end_so_children_come_first() {
        let spans = generate(6, 20_000);
        assert!(spans
            .windows(2)
            .all(|w| w[0].end_time_unix_nano <= w[1].end_time_unix_nano));
        let position: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        for (i, s) in spans.iter().enumerate() {
            if let Some(parent) = s.parent_span_id.and_then(|p| position.get(&p)) {
                assert!(*parent > i);
            }
        }
        // Concurrent traces interleave: the first 200 spans come from many.
        let first: HashSet<TraceId> = spans[..200].iter().map(|s| s.trace_id).collect();
        assert!(first.len() > 10, "only {} traces interleave", first.len());
    }

    #[test]
    fn workload_mixes_kinds_and_trace_sizes() {
        let spans = generate(7, 20_000);
        let kinds: HashSet<SpanKind> = spans.iter().map(|s| s.kind).collect();
        assert_eq!(kinds.len(), 5, "{kinds:?}");
        let traces = complete(&spans);
        let sizes: Vec<usize> = traces.values().map(Vec::len).collect();
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        assert!((10.0..60.0).contains(&mean), "mean {mean}");
        assert!(sizes.contains(&1));
        assert!(*sizes.iter().max().unwrap() >= 100);
        let services: HashSet<&str> = spans.iter().filter_map(Span::service_name).collect();
        assert!(services.len() >= 25, "{} services", services.len());
        let names: HashSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert!(names.len() >= 150, "{} span names", names.len());
    }

    #[test]
    fn about_one_percent_of_traces_fail_with_an_exception() {
        let spans = generate(8, 50_000);
        let traces = complete(&spans);
        let failed: Vec<_> = traces.values().filter(|t| is_error(t)).collect();
        let rate = failed.len() as f64 / traces.len() as f64;
        assert!((0.002..0.03).contains(&rate), "error rate {rate}");
        for trace in failed {
            let thrown: Vec<_> = trace.iter().flat_map(|s| &s.events).collect();
            assert_eq!(thrown.len(), 1);
            let keys: Vec<&str> = thrown[0]
                .attributes
                .iter()
                .map(|kv| kv.key.as_str())
                .collect();
            assert!(keys.starts_with(&[
                "exception.type",
                "exception.message",
                "exception.stacktrace"
            ]));
        }
    }

    #[test]
    fn generate_and_batches_yield_exactly_what_is_asked() {
        assert_eq!(generate(1, 0).len(), 0);
        assert_eq!(generate(1, 1234).len(), 1234);
        let mut g = Generator::new(GenOptions {
            seed: 1,
            ..GenOptions::default()
        });
        let mut batched = g.next_batch(500);
        batched.extend(g.next_batch(734));
        assert_eq!(batched, generate(1, 1234));
    }

    #[test]
    fn in_flight_traces_never_exceed_the_limit() {
        let opts = GenOptions {
            seed: 9,
            traces_per_second: 10_000.0,
            concurrent_traces: 4,
            ..GenOptions::default()
        };
        let mut g = Generator::new(opts);
        let (mut last_end, mut most) = (0, 0);
        for _ in 0..20_000 {
            let s = g.next().unwrap();
            most = most.max(g.unsent.len());
            assert!(s.end_time_unix_nano >= last_end);
            last_end = s.end_time_unix_nano;
        }
        assert_eq!(most, 4, "the limit binds at this rate");
    }

    #[test]
    fn resource_is_identical_for_all_spans_of_an_instance() {
        let spans = generate(10, 10_000);
        let mut seen: HashMap<String, &Resource> = HashMap::new();
        for s in &spans {
            let id = s.resource.attributes[3].value.to_query_string();
            assert_eq!(s.resource.attributes[3].key, "service.instance.id");
            assert_eq!(**seen.entry(id).or_insert(&s.resource), *s.resource);
        }
    }

    #[test]
    fn tiny_and_large_topologies_work() {
        for services in [1, 2, 80] {
            let opts = GenOptions {
                seed: 11,
                services,
                ..GenOptions::default()
            };
            let spans: Vec<Span> = Generator::new(opts).take(5000).collect();
            let names: HashSet<&str> = spans.iter().filter_map(Span::service_name).collect();
            assert!(names.len() <= services && !names.is_empty());
        }
        let topo = Topology::build(&mut Rng::new(1), 80);
        let names: HashSet<&str> = topo.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 80, "service names are unique");
    }

    #[test]
    fn rng_helpers_stay_in_range() {
        let mut r = Rng::new(3);
        for _ in 0..10_000 {
            assert!((5..=9).contains(&r.range(5, 9)));
            assert!(r.f64() < 1.0);
            assert_ne!(r.weighted(&[0.0, 1.0, 0.0]), 0);
        }
        assert_eq!(r.range(0, 0), 0);
        let _ = r.range(0, u64::MAX);
        let mut samples: Vec<f64> = (0..10_001).map(|_| r.log_normal(100.0, 1.0)).collect();
        samples.sort_by(f64::total_cmp);
        assert!(
            (90.0..110.0).contains(&samples[5000]),
            "median {}",
            samples[5000]
        );
    }
}
