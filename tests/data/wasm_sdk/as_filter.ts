// A small filter built with the AssemblyScript proxy-wasm SDK (@solo-io/proxy-runtime 0.1.8),
// used as a test fixture for meshfilter's host emulator (a module meshfilter did not generate).
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context, log, LogLevelValues } from "@solo-io/proxy-runtime";

class TagRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Tag(context_id, this);
  }
}

class Tag extends Context {
  constructor(context_id: u32, root_context: TagRoot) {
    super(context_id, root_context);
  }
  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const ua = stream_context.headers.request.get("user-agent");
    stream_context.headers.request.add("x-as-seen", ua);
    stream_context.headers.request.replace("x-as-tag", this.root_context.getConfiguration());
    log(LogLevelValues.info, "as-filter saw " + ua);
    return FilterHeadersStatusValues.Continue;
  }
  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("hello", "world!");
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new TagRoot(context_id); }, "as_tag");
