"""Text templates and vocabulary for the synthetic issue corpus (used by corpus_generator).

Each issue kind (bug / feature / question / docs) has its own title and body templates so the
label is learnable from the text, but the vocabulary is drawn per issue from a domain's lists
and sections are included, ordered and phrased at random so no single phrase gives it away.
Some cross-signal is deliberate (questions that paste an error, bugs phrased as questions).

Templates are `str.format_map` strings over a per-issue context dict (`Ctx`): every `{name}`
is one value chosen for that issue, so a title and its body talk about the same function.
"""

from __future__ import annotations

import random
import string

KINDS = ("bug", "feature", "question", "docs")

# ---------------------------------------------------------------------------------------------
# Domains: the vocabulary of each synthetic project.
# ---------------------------------------------------------------------------------------------

TENSORFLUX = {
    "pkg": ["tensorflux"],
    "module": ["tensorflux.nn", "tensorflux.data", "tensorflux.optim", "tensorflux.io", "tensorflux.metrics",
               "tensorflux.distributed", "tensorflux.export", "tensorflux.callbacks"],
    "func": ["load_dataset", "Trainer.fit", "DataLoader", "save_checkpoint", "load_checkpoint", "Tensor.reshape",
             "optim.AdamW", "nn.Conv2d", "export_onnx", "Tensor.to", "nn.LayerNorm", "metrics.f1_score",
             "Trainer.evaluate", "data.shuffle", "io.read_parquet", "nn.MultiHeadAttention", "set_seed",
             "distributed.init", "callbacks.EarlyStopping", "Tensor.masked_fill", "nn.Embedding", "lr_scheduler.cosine"],
    "param": ["batch_size", "num_workers", "dtype", "device", "shuffle", "drop_last", "pin_memory", "strict",
              "map_location", "weight_decay", "eps", "padding", "axis", "keepdim", "prefetch", "patience"],
    "error": ["ValueError", "RuntimeError", "TypeError", "KeyError", "IndexError", "AttributeError", "OSError",
              "AssertionError", "NotImplementedError", "ZeroDivisionError"],
    "errmsg": ["shape mismatch: expected (32, 128) but got (32, 127)", "expected scalar type Float but found Half",
               "'NoneType' object has no attribute 'shape'", "index 64 is out of bounds for dimension 0 with size 64",
               "CUDA out of memory. Tried to allocate 2.00 GiB", "unexpected key(s) in state_dict: 'head.bias'",
               "cannot reshape tensor of 4096 elements into shape [3, -1]", "division by zero in learning rate warmup",
               "file not found: checkpoints/last.ckpt", "dtype bfloat16 is not supported on this backend",
               "too many open files", "mat1 and mat2 shapes cannot be multiplied (8x512 and 256x10)"],
    "version": ["0.14.2", "0.15.0", "0.15.1", "0.16.0rc1", "0.16.0", "0.16.3", "0.17.0", "0.17.1", "0.18.0.dev0"],
    "oldversion": ["0.12.0", "0.13.1", "0.14.0", "0.14.1"],
    "os": ["Ubuntu 22.04", "Ubuntu 24.04", "macOS 14.5", "macOS 15.1", "Windows 11", "Debian 12", "Fedora 40",
           "CentOS 7", "WSL2 (Ubuntu 22.04)", "Arch Linux"],
    "runtime": ["Python 3.10.14", "Python 3.11.9", "Python 3.12.4", "Python 3.9.19", "Python 3.13.0"],
    "hardware": ["NVIDIA A100 80GB", "RTX 4090", "RTX 3060", "Apple M2 Pro", "CPU only", "T4 on Colab", "H100"],
    "component": ["the data loader", "the ONNX exporter", "mixed precision training", "the checkpoint loader",
                  "distributed training", "the tokenizer pipeline", "the metrics module", "the LR scheduler",
                  "gradient accumulation", "the CLI", "the Parquet reader", "the attention kernel"],
    "condition": ["num_workers > 0", "the dataset is empty", "resuming from a checkpoint", "running on Windows",
                  "batch_size is 1", "using bfloat16", "the input has NaNs", "training on 2 GPUs",
                  "the path contains spaces", "shuffle=True and drop_last=True", "the model is wrapped in DDP"],
    "feature": ["bfloat16 mixed precision on CPU", "streaming datasets from S3", "ONNX export with dynamic shapes",
                "gradient checkpointing", "the Apple MPS backend", "reading Parquet files directly",
                "an early stopping callback", "multi-node training with SLURM", "LoRA adapters",
                "a progress bar in Trainer.fit", "per-parameter learning rates", "exporting metrics to MLflow",
                "sparse tensors in DataLoader", "deterministic data shuffling", "resumable data loaders",
                "a `dry_run` mode", "type hints for the public API", "loading checkpoints lazily"],
    "task": ["freeze the first layers of a model", "use a custom collate function", "resume training from a checkpoint",
             "log metrics to TensorBoard", "train on multiple GPUs", "load a dataset from a folder of images",
             "change the learning rate during training", "export a model to ONNX", "set a random seed everywhere",
             "use gradient accumulation", "evaluate on a validation set every N steps", "write a custom callback",
             "convert a checkpoint from 0.14 to 0.16", "limit GPU memory usage", "run inference in half precision"],
    "doc_page": ["the Quickstart guide", "the README", "the installation page", "the API reference for Trainer",
                 "the migration guide", "the data loading tutorial", "the FAQ", "CONTRIBUTING.md",
                 "the docstring of load_checkpoint", "the distributed training guide", "the changelog"],
    "doc_url": ["https://tensorflux.readthedocs.io/en/latest/quickstart.html",
                "https://tensorflux.readthedocs.io/en/latest/api/trainer.html",
                "https://tensorflux.readthedocs.io/en/stable/install.html",
                "https://tensorflux.readthedocs.io/en/latest/guides/distributed.html",
                "https://tensorflux.readthedocs.io/en/latest/migration.html"],
    "script": ["train.py", "main.py", "repro.py", "run_experiment.py", "notebook.ipynb", "finetune.py"],
    "lang": ["python"],
    "dep": ["numpy", "protobuf", "pyarrow", "requests", "tqdm", "pillow", "onnx", "fsspec"],
}

WEAVE = {
    "pkg": ["weave"],
    "module": ["cmd/weave", "internal/sync", "internal/deploy", "pkg/config", "internal/plugins", "pkg/remote"],
    "func": ["weave sync", "weave deploy", "weave init", "weave plugin install", "weave diff", "weave login",
             "weave status", "weave rollback", "weave config set", "weave logs", "weave build", "weave watch"],
    "param": ["--dry-run", "--parallel", "--profile", "--timeout", "--force", "--config", "--verbose",
              "--output=json", "--exclude", "--region", "--no-cache", "--retries"],
    "error": ["panic", "error", "fatal error", "Error"],
    "errmsg": ["runtime error: invalid memory address or nil pointer dereference", "context deadline exceeded",
               "open weave.toml: no such file or directory", "x509: certificate signed by unknown authority",
               "dial tcp 10.0.0.12:443: connect: connection refused", "yaml: line 12: did not find expected key",
               "permission denied while reading ~/.weave/credentials", "concurrent map writes",
               "runtime error: index out of range [3] with length 3", "unexpected EOF"],
    "version": ["v1.8.0", "v1.8.2", "v1.9.0", "v1.9.1", "v2.0.0-beta.1", "v2.0.0", "v2.0.3", "v2.1.0"],
    "oldversion": ["v1.6.4", "v1.7.0", "v1.7.2"],
    "os": ["Ubuntu 22.04", "macOS 14 (arm64)", "macOS 13 (amd64)", "Windows 10", "Windows 11", "Alpine 3.19",
           "Debian 12", "Amazon Linux 2023", "NixOS 24.05"],
    "runtime": ["go1.22.5", "go1.23.1", "go1.21.9", "installed via Homebrew", "installed via the install script",
                "the official Docker image"],
    "hardware": ["a GitHub Actions runner", "a 2-core VM", "an M1 MacBook", "a Raspberry Pi 4", "a Kubernetes pod"],
    "component": ["the sync engine", "the plugin loader", "the config parser", "the deploy command",
                  "the file watcher", "the remote backend", "shell completion", "the progress output",
                  "the credential helper", "the diff renderer"],
    "condition": ["the project has more than 10k files", "using --parallel 8", "the config uses includes",
                  "running behind a corporate proxy", "HOME is not set", "the remote is unreachable",
                  "a symlink points outside the project", "running inside Docker", "the token expired",
                  "two syncs run at the same time"],
    "feature": ["a --json output flag", "Windows ARM64 builds", "shell completion for fish", "retrying failed uploads",
                "environment variable expansion in weave.toml", "a plugin SDK", "SSO login",
                "ignoring files via .weaveignore", "parallel deploys per region", "a `weave doctor` command",
                "HTTP proxy settings in the config", "colored diff output", "rollback to a named release",
                "a Homebrew tap for nightly builds", "exit codes that distinguish failures"],
    "task": ["deploy to two regions at once", "use weave in a GitHub Actions workflow", "pin a plugin version",
             "authenticate with a service account", "exclude a folder from sync", "run weave behind a proxy",
             "migrate my config from v1 to v2", "see what a deploy will change before running it",
             "debug a slow sync", "store credentials outside the home directory", "set a default profile"],
    "doc_page": ["the README", "the getting started guide", "docs/config.md", "the CLI reference",
                 "the plugin authoring guide", "the v2 migration notes", "CONTRIBUTING.md", "the man page"],
    "doc_url": ["https://weave.dev/docs/getting-started", "https://weave.dev/docs/reference/config",
                "https://weave.dev/docs/cli/sync", "https://weave.dev/docs/plugins"],
    "script": ["weave.toml", "deploy.sh", ".github/workflows/deploy.yml", "Makefile"],
    "lang": ["toml", "yaml", "bash"],
    "dep": ["golang.org/x/net", "github.com/spf13/cobra", "gopkg.in/yaml.v3", "github.com/fatih/color"],
}

# Chinese-language Gitee project (a Java micro-service framework).
LINGYUN = {
    "pkg": ["lingyun"],
    "module": ["lingyun-gateway", "lingyun-config", "lingyun-registry", "lingyun-auth", "lingyun-mq", "lingyun-cache"],
    "func": ["RouteDispatcher.dispatch", "ConfigClient.refresh", "RegistryClient.register", "TokenFilter.doFilter",
             "RateLimiter.tryAcquire", "CacheManager.evict", "MqProducer.send", "JsonUtils.parse",
             "SnowflakeIdGenerator.nextId", "DataSourceRouter.determineKey"],
    "param": ["lingyun.gateway.timeout", "lingyun.config.refresh-interval", "lingyun.registry.address",
              "lingyun.auth.jwt-secret-ttl", "lingyun.mq.retry-times", "lingyun.cache.expire"],
    "error": ["java.lang.NullPointerException", "java.lang.IllegalStateException", "java.lang.ClassCastException",
              "java.util.ConcurrentModificationException", "java.net.SocketTimeoutException",
              "org.springframework.beans.factory.BeanCreationException"],
    "errmsg": ["Cannot invoke \"String.length()\" because \"key\" is null", "Read timed out",
               "Error creating bean with name 'routeDispatcher'", "class java.lang.Integer cannot be cast to class java.lang.Long",
               "Connection refused", "Illegal character in path at index 17"],
    "version": ["2.3.0", "2.3.1", "2.4.0", "2.4.2", "2.5.0-SNAPSHOT", "2.5.0", "3.0.0-M1"],
    "oldversion": ["2.1.5", "2.2.0", "2.2.3"],
    "os": ["CentOS 7.9", "Ubuntu 20.04", "麒麟 V10", "统信 UOS 20", "Windows 10", "macOS 13", "openEuler 22.03"],
    "runtime": ["JDK 1.8.0_392", "JDK 11.0.21", "JDK 17.0.9", "JDK 21"],
    "hardware": ["4 核 8G 虚拟机", "鲲鹏 920 服务器", "K8s Pod (2C4G)", "本地开发机"],
    "component": ["网关路由", "配置中心", "注册中心", "鉴权过滤器", "限流组件", "缓存模块", "消息队列客户端", "分布式 ID 生成器",
                  "多数据源切换", "日志链路追踪"],
    "condition": ["高并发压测时", "配置热更新后", "服务重启后", "使用 Nacos 作为注册中心时", "JDK 17 下启动时",
                  "网关转发 WebSocket 请求时", "Redis 集群模式下", "请求头包含中文时", "多租户模式开启后"],
    "feature": ["支持 gRPC 转发", "提供灰度发布能力", "支持国密 SM4 加密", "接入 Prometheus 监控指标", "支持配置加密存储",
                "提供多租户隔离", "支持 Spring Boot 3", "增加接口级限流配置", "支持 OpenTelemetry 链路追踪",
                "提供管理后台的暗色主题", "支持按标签路由"],
    "task": ["自定义网关过滤器", "在 K8s 中部署注册中心", "配置多个数据源", "关闭默认的鉴权", "对接自己的用户体系",
             "修改默认端口", "开启调试日志", "从 2.2 升级到 2.4", "配置 Redis 哨兵模式", "实现自定义限流规则"],
    "doc_page": ["README", "快速开始文档", "部署文档", "配置项说明", "升级指南", "常见问题 FAQ", "贡献指南"],
    "doc_url": ["https://lingyun-dev.gitee.io/docs/quick-start", "https://lingyun-dev.gitee.io/docs/config",
                "https://lingyun-dev.gitee.io/docs/deploy"],
    "script": ["application.yml", "bootstrap.yml", "pom.xml", "docker-compose.yml"],
    "lang": ["yaml", "java", "xml"],
    "dep": ["spring-boot", "fastjson", "netty", "jackson-databind", "log4j-core"],
}

DOMAINS = {"tensorflux": TENSORFLUX, "weave": WEAVE, "lingyun": LINGYUN}

# ---------------------------------------------------------------------------------------------
# People.
# ---------------------------------------------------------------------------------------------

_FIRST = ["alex", "maria", "kenji", "priya", "tom", "lena", "omar", "sofia", "ivan", "chen", "fatima", "lucas",
          "aisha", "noah", "yuki", "mateo", "emma", "ravi", "hannah", "diego", "olga", "samuel", "mei", "jonas",
          "amara", "felix", "nadia", "pablo", "ingrid", "kwame", "zoe", "arjun", "clara", "tariq", "elif", "bruno"]
_LAST = ["doe", "garcia", "tanaka", "sharma", "nguyen", "schmidt", "khan", "rossi", "petrov", "li", "haddad",
         "silva", "okafor", "kim", "sato", "lopez", "muller", "patel", "novak", "ferreira", "berg", "adeyemi"]
_PINYIN = ["zhangwei", "wangfang", "lina", "liuyang", "chenjie", "yangming", "huanglei", "zhaojing", "wuhao",
           "zhouxin", "xulei", "sunli", "maqiang", "zhuyan", "hulin", "guoyong", "heping", "linfeng", "luoxi",
           "gaojun", "liangyu", "songtao", "zhengkai", "xiehui", "hanmei", "tangbin", "fengyi", "dongxu"]
_HANZI = ["张伟", "王芳", "李娜", "刘洋", "陈杰", "杨明", "黄磊", "赵静", "吴昊", "周欣", "徐磊", "孙丽", "马强", "朱艳",
          "胡林", "郭勇", "何平", "林峰", "罗曦", "高军", "梁宇", "宋涛", "郑凯", "谢辉", "韩梅", "唐斌", "冯毅", "董旭"]


def make_logins(rng: random.Random, n: int, chinese: bool = False) -> list[tuple[str, str]]:
    """`n` distinct (login, display name) pairs."""
    out: dict[str, str] = {}
    while len(out) < n:
        if chinese:
            i = rng.randrange(len(_PINYIN))
            login = _PINYIN[i] + rng.choice(["", "", str(rng.randint(1, 99)), "_dev", "-" + str(rng.randint(1990, 2005))])
            name = _HANZI[i]
        else:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            style = rng.randrange(6)
            login = [f"{first}{last}", f"{first}-{last}", f"{first[0]}{last}", f"{first}_{last[:3]}",
                     f"{first}{rng.randint(1, 999)}", f"dev-{first}{rng.randint(1, 99)}"][style]
            name = f"{first.title()} {last.title()}"
        out.setdefault(login, name)
    return list(out.items())


# ---------------------------------------------------------------------------------------------
# Building blocks for bodies.
# ---------------------------------------------------------------------------------------------


class Ctx(dict):
    """Per-issue template context; unknown keys fail loudly (a template typo must not pass)."""

    def __missing__(self, key: str) -> str:
        raise KeyError(f"template placeholder {{{key}}} has no value")


def new_ctx(rng: random.Random, domain: dict) -> Ctx:
    ctx = Ctx({k: rng.choice(v) for k, v in domain.items()})
    # Second picks, for templates that compare two things.
    ctx["func2"] = rng.choice([f for f in domain["func"] if f != ctx["func"]])
    ctx["feature2"] = rng.choice([f for f in domain["feature"] if f != ctx["feature"]])
    ctx["n"] = str(rng.randint(2, 400))
    ctx["line"] = str(rng.randint(12, 900))
    ctx["pct"] = str(rng.randint(5, 95))
    return ctx


def python_traceback(rng: random.Random, ctx: Ctx) -> str:
    frames = []
    for _ in range(rng.randint(1, 4)):
        mod = rng.choice(["trainer", "data/loader", "nn/functional", "io/checkpoint", "optim/adamw", "utils/shapes"])
        fn = rng.choice(["fit", "_run_step", "__next__", "forward", "load_state_dict", "_collate", "step", "_check"])
        frames.append(
            f'  File "/usr/lib/python3/site-packages/tensorflux/{mod}.py", line {rng.randint(20, 1500)}, in {fn}\n'
            f"    {rng.choice(['out = self._impl(x)', 'batch = next(self._it)', 'return F.linear(x, w, b)', 'state = torch.load(path)', 'self._validate(shape)'])}"
        )
    return (
        "Traceback (most recent call last):\n"
        f'  File "{ctx["script"]}", line {ctx["line"]}, in <module>\n'
        f"    {ctx['func']}({ctx['param']}={rng.choice(['True', '0', '32', 'None', repr('cuda')])})\n"
        + "\n".join(frames)
        + f"\n{ctx['error']}: {ctx['errmsg']}"
    )


def go_panic(rng: random.Random, ctx: Ctx) -> str:
    lines = [f"{ctx['error']}: {ctx['errmsg']}"]
    if ctx["error"] == "panic":
        lines.append("[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x10a4f3c]")
    lines.append("")
    lines.append(f"goroutine {rng.randint(1, 90)} [running]:")
    for _ in range(rng.randint(2, 5)):
        pkg = rng.choice(["internal/sync", "internal/deploy", "pkg/config", "pkg/remote", "cmd/weave"])
        fn = rng.choice(["(*Engine).walk", "(*Client).Do", "Load", "(*Planner).Plan", "run", "(*Watcher).loop"])
        lines.append(f"github.com/weavekit/weave/{pkg}.{fn}(...)")
        lines.append(f"\t/src/{pkg}/{rng.choice(['engine', 'client', 'config', 'plan', 'main'])}.go:{rng.randint(10, 700)} +0x{rng.randint(16, 4095):x}")
    return "\n".join(lines)


def java_stack(rng: random.Random, ctx: Ctx) -> str:
    cls, _, meth = ctx["func"].partition(".")
    lines = [f"{ctx['error']}: {ctx['errmsg']}", f"\tat com.lingyun.core.{cls}.{meth}({cls}.java:{ctx['line']})"]
    for _ in range(rng.randint(2, 5)):
        lines.append("\tat " + rng.choice([
            "org.springframework.web.servlet.DispatcherServlet.doDispatch(DispatcherServlet.java:1067)",
            "io.netty.channel.AbstractChannelHandlerContext.invokeChannelRead(AbstractChannelHandlerContext.java:379)",
            "com.lingyun.gateway.filter.GlobalFilterChain.filter(GlobalFilterChain.java:88)",
            "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1136)",
            "com.lingyun.config.ConfigClient.lambda$refresh$2(ConfigClient.java:214)",
        ]))
    lines.append(f"\t... {rng.randint(5, 60)} more")
    return "\n".join(lines)


def stack_for(domain_name: str, rng: random.Random, ctx: Ctx) -> str:
    return {"tensorflux": python_traceback, "weave": go_panic, "lingyun": java_stack}[domain_name](rng, ctx)


def code_snippet(domain_name: str, rng: random.Random, ctx: Ctx) -> str:
    if domain_name == "tensorflux":
        return rng.choice([
            f"import tensorflux as tfx\n\nds = tfx.load_dataset('data/train', {ctx['param']}=True)\nmodel = tfx.nn.Sequential(tfx.nn.Linear(128, 10))\ntfx.{ctx['func']}(model, ds)",
            f"from {ctx['module']} import *\n\nx = tfx.randn(32, 128)\nout = {ctx['func']}(x, {ctx['param']}={rng.randint(0, 8)})\nprint(out.shape)",
            f"trainer = tfx.Trainer(model, max_steps={ctx['n']})\ntrainer.fit(train_ds, val_ds)",
        ])
    if domain_name == "weave":
        return rng.choice([
            f"$ {ctx['func']} {ctx['param']}\n",
            f"[project]\nname = \"demo\"\nremote = \"s3://bucket/demo\"\n\n[sync]\nparallel = {rng.randint(1, 16)}\nexclude = [\"node_modules\", \".git\"]",
            f"- name: Deploy\n  run: {ctx['func']} {ctx['param']} --profile prod",
        ])
    return rng.choice([
        f"lingyun:\n  gateway:\n    timeout: {rng.randint(1, 60)}s\n  registry:\n    address: 127.0.0.1:8848",
        "@Bean\npublic RouteDispatcher routeDispatcher() {\n    return new RouteDispatcher(properties);\n}",
        f"<dependency>\n  <groupId>com.lingyun</groupId>\n  <artifactId>{ctx['module']}</artifactId>\n  <version>{ctx['version']}</version>\n</dependency>",
    ])


def fence(lang: str, text: str) -> str:
    return f"```{lang}\n{text}\n```"


# ---------------------------------------------------------------------------------------------
# English issue templates (GitHub repos and the GitHub mirror on Gitee).
# ---------------------------------------------------------------------------------------------

EN_TITLES = {
    "bug": [
        "{error} when calling {func} with {param}",
        "{func} crashes when {condition}",
        "Regression in {version}: {func} returns wrong results",
        "{func} raises {error} after upgrading to {version}",
        "{component} hangs when {condition}",
        "Memory leak in {component}",
        "[Bug] {component} fails when {condition}",
        "Unexpected {error}: {errmsg}",
        "{func} ignores {param}",
        "bug: {component} broken on {os}",
        "Segfault in {component} on {os}",
        "{func} silently produces wrong output when {condition}",
    ],
    "feature": [
        "Add support for {feature}",
        "Feature request: {feature}",
        "Allow {func} to accept {param}",
        "[RFC] {feature}",
        "Option to configure {param} in {func}",
        "Support {feature}",
        "Proposal: {feature}",
        "Would be nice to have {feature}",
        "feat: {feature}",
        "Expose {param} on {func}",
    ],
    "question": [
        "How do I {task}?",
        "How to {task} with {pkg}?",
        "Is it possible to {task}?",
        "What is the difference between {func} and {func2}?",
        "[Question] {task}",
        "Best way to {task}?",
        "Question about {param} in {func}",
        "Can {pkg} {task}?",
        "Help: trying to {task}",
        "Is {feature} supported?",
    ],
    "docs": [
        "Typo in {doc_page}",
        "{doc_page}: example for {func} is outdated",
        "Docs: {param} of {func} is not documented",
        "Broken link in {doc_page}",
        "Clarify {param} in {doc_page}",
        "docs: fix wrong default of {param}",
        "Documentation for {func} is missing",
        "[Docs] {doc_page} still refers to {oldversion}",
        "Improve docs for {component}",
        "README install instructions don't work",
    ],
}

_EN_BUG_INTROS = [
    "**Describe the bug**\n{func} fails when {condition}.",
    "When {condition}, {func} raises `{error}` instead of working as it did in {oldversion}.",
    "I'm seeing a crash in {component} since upgrading to {version}.",
    "Hi! After updating to {version}, {component} no longer works for me when {condition}.",
    "{func} throws an error every time {condition}. This used to work.",
    "Looks like a regression: {component} breaks when {condition}.",
]
_EN_STEPS = [
    "### Steps to reproduce\n1. Install {pkg} {version}\n2. Run the snippet below\n3. See the error",
    "**To Reproduce**\nSteps to reproduce the behavior:\n1. Create a project with the config below\n2. Call `{func}` with `{param}`\n3. Observe the failure",
    "Steps to reproduce:\n- {condition}\n- call {func}\n- it fails after ~{n} iterations",
    "Minimal reproduction:",
]
_EN_EXPECTED = [
    "**Expected behavior**\n{func} should finish without errors.",
    "### Expected vs actual\nExpected: it works like in {oldversion}.\nActual: `{error}: {errmsg}`",
    "Expected: no error. Actual: the process dies with {error}.",
    "**Expected behavior**\nThe output should have the same shape as the input.\n\n**Actual behavior**\nIt crashes (see traceback).",
]
_EN_ENV = [
    "### Environment\n- OS: {os}\n- {pkg} version: {version}\n- {runtime}\n- Hardware: {hardware}",
    "**Environment**\n* {pkg} {version}\n* {os}\n* {runtime}",
    "Env: {os}, {runtime}, {pkg}=={version}",
]
_EN_FEATURE_INTROS = [
    "**Is your feature request related to a problem? Please describe.**\nRight now {pkg} has no support for {feature}, so I have to patch {func} by hand.",
    "It would be great if {pkg} supported {feature}.",
    "Add support for {feature}. Many users have asked for this in discussions.",
    "It would be really useful to have {feature}. Our team currently works around it with a fork.",
    "I'd love to see {feature} in {pkg}. It would make {task} much easier.",
    "Proposal: add {feature}, similar to what other tools offer.",
]
_EN_FEATURE_SOLUTION = [
    "**Describe the solution you'd like**\nA new option `{param}` on `{func}` that enables it.",
    "Proposed API:",
    "### Motivation\nWe run {pkg} on {hardware} and this would cut our setup time by ~{pct}%.",
    "**Describe alternatives you've considered**\nWrapping {func2} myself, but that is fragile across versions.",
    "This could be opt-in behind a flag so nothing changes for existing users.",
]
_EN_FEATURE_OUTROS = ["Happy to open a PR if the maintainers agree with the direction.", "Thanks for considering!",
                      "Would you accept a contribution for this?", "", "+1 from my team as well."]
_EN_QUESTION_INTROS = [
    "How do I {task}? I read {doc_page} but couldn't find it.",
    "I'm trying to {task}, but I can't figure out the right way to do it with {func}.",
    "Is there a recommended way to {task}?",
    "Hi, newbie here. How can I {task}? Should I use {func} or {func2}?",
    "What's the correct way to {task}? The docs mention {param} but I'm not sure what it does.",
    "Quick question: can I {task} without writing a custom wrapper?",
]
_EN_QUESTION_DETAILS = [
    "This is what I have so far:",
    "I tried setting `{param}` but nothing changed. Am I missing something?",
    "I get this error but I'm not sure if I'm using it wrong:",
    "Any pointers appreciated.",
    "Is this supported at all, or should I look elsewhere?",
]
_EN_QUESTION_OUTROS = ["Thanks in advance!", "Thanks!", "Any help would be appreciated 🙏", "", "Cheers"]
_EN_DOCS_INTROS = [
    "In {doc_page} there is a typo: \"recieve\" should be \"receive\".",
    "The example for `{func}` in {doc_page} is outdated: it still uses the {oldversion} API.",
    "The docs for `{func}` don't say what `{param}` does or what its default is.",
    "The link to {doc_page} at {doc_url} returns a 404.",
    "{doc_page} says the default of `{param}` is `True`, but the code uses `False`.",
    "The README install instructions fail on {os}; the docs should mention the extra step.",
    "The docs page {doc_url} has a broken code block (the indentation is off).",
    "Small docs issue: {doc_page} refers to `{func2}`, which was renamed in {version}.",
]
_EN_DOCS_DETAILS = [
    "I can send a PR to fix the wording.",
    "Suggested wording: \"`{param}` controls how {component} handles the input.\"",
    "Page: {doc_url}",
    "It confused me for a while, probably others too.",
    "",
]


def en_title(rng: random.Random, kind: str, ctx: Ctx) -> str:
    return rng.choice(EN_TITLES[kind]).format_map(ctx)


def en_body(rng: random.Random, kind: str, ctx: Ctx, domain_name: str) -> str:
    lang = ctx["lang"]

    def t(template: str) -> str:  # fill templates only: generated code/stack text may hold braces
        return template.format_map(ctx)

    parts: list[str] = []
    if kind == "bug":
        parts.append(t(rng.choice(_EN_BUG_INTROS)))
        if rng.random() < 0.75:
            parts.append(t(rng.choice(_EN_STEPS)))
            parts.append(fence(lang, code_snippet(domain_name, rng, ctx)))
        if rng.random() < 0.8:
            stack = stack_for(domain_name, rng, ctx)
            parts.append(fence("", stack) if rng.random() < 0.7 else stack)
        if rng.random() < 0.7:
            parts.append(t(rng.choice(_EN_EXPECTED)))
        if rng.random() < 0.7:
            parts.append(t(rng.choice(_EN_ENV)))
    elif kind == "feature":
        parts.append(t(rng.choice(_EN_FEATURE_INTROS)))
        for sol in rng.sample(_EN_FEATURE_SOLUTION, rng.randint(1, 3)):
            parts.append(t(sol))
            if sol == "Proposed API:":
                parts.append(fence(lang, code_snippet(domain_name, rng, ctx)))
        parts.append(rng.choice(_EN_FEATURE_OUTROS))
    elif kind == "question":
        parts.append(t(rng.choice(_EN_QUESTION_INTROS)))
        detail = rng.choice(_EN_QUESTION_DETAILS)
        parts.append(t(detail))
        if detail.endswith(":"):
            # Questions sometimes paste an error too: deliberate cross-signal with bugs.
            snippet = stack_for(domain_name, rng, ctx) if "error" in detail else code_snippet(domain_name, rng, ctx)
            parts.append(fence("" if "error" in detail else lang, snippet))
        if rng.random() < 0.3:
            parts.append(t(rng.choice(_EN_ENV)))
        parts.append(rng.choice(_EN_QUESTION_OUTROS))
    else:
        parts.append(t(rng.choice(_EN_DOCS_INTROS)))
        if rng.random() < 0.3:
            parts.append(fence(lang, code_snippet(domain_name, rng, ctx)))
        parts.append(t(rng.choice(_EN_DOCS_DETAILS)))
    return "\n\n".join(p for p in parts if p)


# ---------------------------------------------------------------------------------------------
# Chinese issue templates (the Gitee-native repo).
# ---------------------------------------------------------------------------------------------

ZH_TITLES = {
    "bug": ["调用 {func} 时报错 {error}", "{component}在{condition}出现异常", "升级到 {version} 后 {func} 返回结果不正确",
            "【缺陷】{component}{condition}报空指针", "{module} 启动失败：{errmsg}", "{condition}{component}内存泄漏",
            "{func} 偶发超时", "bug: {component} 在 {os} 上无法使用"],
    "feature": ["希望{feature}", "建议增加{feature}", "【需求】{feature}", "能否{feature}？", "新功能：{feature}",
                "{component}是否可以{feature}", "建议 {module} {feature}"],
    "question": ["请问如何{task}？", "{component}怎么配置 {param}？", "【咨询】如何{task}", "求助：{task}时遇到问题",
                 "{func} 和 {func2} 有什么区别？", "想{task}，应该怎么做？", "关于 {param} 的疑问"],
    "docs": ["文档中{doc_page}有错别字", "{doc_page}里的示例已过时", "{param} 配置项缺少说明", "【文档】{doc_page}链接失效",
             "README 中的安装步骤有误", "{doc_page}中 {func} 的参数说明与代码不一致", "完善{component}的文档"],
}
_ZH_BUG = [
    "**问题描述**\n{condition}，{component}报错，调用 {func} 直接抛出 {error}。",
    "**复现步骤**\n1. 使用 {version} 版本启动服务\n2. {condition}调用 {func}\n3. 查看日志，出现异常",
    "**期望结果**\n正常返回，不报错。\n\n**实际结果**\n抛出异常，服务不可用。",
    "**环境信息**\n- 操作系统：{os}\n- 运行环境：{runtime}\n- 版本：{version}\n- 机器：{hardware}",
]
_ZH_FEATURE = [
    "**需求背景**\n目前{component}不支持这个能力，我们只能自己改源码。",
    "如果能{feature}就太好了，很多生产环境都需要。",
    "**期望方案**\n在配置中增加 `{param}` 开关，默认关闭，不影响现有用户。",
    "希望官方能考虑一下，我们团队也愿意贡献代码。",
    "参考其他框架的做法，建议{feature}。",
]
_ZH_QUESTION = [
    "我想{task}，但是看了{doc_page}还是不知道怎么做。",
    "请问 {param} 应该怎么配置？试了几种写法都不生效。",
    "新手求助，{component}应该怎么用？",
    "是否有推荐的方式来{task}？谢谢！",
    "麻烦大佬们帮忙看一下，感谢！",
]
_ZH_DOCS = [
    "{doc_page}中有一处错别字，\"配制\"应为\"配置\"。",
    "{doc_page}里的示例代码还是 {oldversion} 的写法，新版本已经不适用了。",
    "文档没有说明 `{param}` 的默认值和作用。",
    "文档链接 {doc_url} 打开是 404。",
    "README 中的安装命令在 {os} 上执行失败，建议补充说明。",
]


def zh_title(rng: random.Random, kind: str, ctx: Ctx) -> str:
    return rng.choice(ZH_TITLES[kind]).format_map(ctx)


def zh_body(rng: random.Random, kind: str, ctx: Ctx, domain_name: str) -> str:
    lang = ctx["lang"]
    if kind == "bug":
        parts = [_ZH_BUG[0]] + [p for p in _ZH_BUG[1:] if rng.random() < 0.7]
    elif kind == "feature":
        parts = rng.sample(_ZH_FEATURE, rng.randint(2, 4))
    elif kind == "question":
        parts = rng.sample(_ZH_QUESTION, rng.randint(1, 3))
    else:
        parts = rng.sample(_ZH_DOCS, rng.randint(1, 2))
    parts = [p.format_map(ctx) for p in parts]
    if kind == "bug" and rng.random() < 0.8:
        parts.insert(rng.randint(1, len(parts)), "异常堆栈：\n" + fence("", stack_for(domain_name, rng, ctx)))
    if kind == "question" and rng.random() < 0.5:
        parts.insert(1, "我的配置如下：\n" + fence(lang, code_snippet(domain_name, rng, ctx)))
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Comments.
# ---------------------------------------------------------------------------------------------

EN_REPLIES = {
    "bug": ["Thanks for the report! I can reproduce this on {version}.",
            "Could you share the full traceback and the output of `pip show {pkg}`?",
            "This should be fixed by #{n}, it will be in the next release.",
            "Same here, also seeing this on {os}.",
            "+1, hitting this too when {condition}.",
            "I bisected it to the change in {module}. Working on a fix.",
            "Closing as a duplicate of #{n}.",
            "Workaround for now: pin {pkg} to {oldversion}.",
            "Confirmed, the problem is in {func}. PR incoming."],
    "feature": ["This sounds reasonable. Would you be willing to open a PR?",
                "We discussed this in the maintainers' sync; we'd accept it behind a flag.",
                "👍 would love this too.",
                "Not planned for now, but we'll keep this open for feedback.",
                "There is a partial implementation in #{n} if anyone wants to pick it up.",
                "Could you describe your use case in more detail?"],
    "question": ["You can do this with `{func}({param}=...)`. See {doc_url}.",
                 "Have a look at {doc_page}, there's an example for exactly this.",
                 "Did that help? Closing for now, feel free to reopen.",
                 "That worked, thank you!",
                 "I think {func2} is what you want here.",
                 "Please use the discussions forum for usage questions in the future 🙂"],
    "docs": ["Good catch, thanks! PR welcome.",
             "Fixed in #{n}.",
             "Thanks, the docs will be updated in the next release.",
             "I'd like to work on this one if nobody else is.",
             "The page has moved to {doc_url}."],
}
ZH_REPLIES = {
    "bug": ["感谢反馈，已复现，{version} 版本存在这个问题。", "麻烦贴一下完整的异常堆栈和配置。", "已在 {version} 修复，请升级后再试。",
            "我这边也遇到了同样的问题。", "临时方案：先回退到 {oldversion}。", "定位到是{component}的问题，正在修复。"],
    "feature": ["这个需求不错，欢迎提交 PR。", "已列入下个版本的计划。", "+1，我们也需要这个功能。", "暂不考虑，先保持开放收集反馈。"],
    "question": ["可以参考{doc_page}，里面有示例。", "把 {param} 设置一下就可以了。", "问题解决了吗？没有回复的话先关闭了。",
                 "已解决，谢谢！"],
    "docs": ["感谢指出，已修正。", "欢迎直接提交 PR 修改文档。", "文档已更新。"],
}

EMAIL_FOOTERS = [
    "\n\nOn {date}, {name} <notifications@github.com> wrote:\n> {quote}\n\n—\nReply to this email directly, view it on GitHub, or unsubscribe.\nYou are receiving this because you commented.",
    "\n\nSent from my iPhone",
    "\n\n-- \n{name}\nSenior Engineer | {company}\n{email} | +1 555 {phone}",
    "\n\nOn {date} {name} wrote:\n> {quote}",
]

STALE_BOT = ("This issue has been automatically marked as stale because it has not had recent activity. "
             "It will be closed if no further activity occurs. Thank you for your contributions.")
GITEE_WELCOME_BOT = ("感谢您提交 issue！\n我是 ci-robot，负责为仓库中的 issue 和 PR 自动打标签。"
                     "\n如需帮助，请在评论中输入 /help 查看命令列表。")
CODECOV = ("## [Codecov](https://app.codecov.io/gh/{repo}/pull/{number}) Report\n"
           "All modified and coverable lines are covered by tests :white_check_mark:\n"
           "> Project coverage is {cov}%. Comparing base (`{sha1}`) to head (`{sha2}`).")


def random_token(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
B32 = string.ascii_uppercase + "234567"
HEX = "0123456789abcdef"
