#ifndef XRAYSINK_TOOLS_DEMO_ROUTES_H_
#define XRAYSINK_TOOLS_DEMO_ROUTES_H_

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <string>

namespace xraysink::tools::demo {

// What a route answers.
struct Reply {
  int status = 200;
  std::string body;
};

// The demo service's routes, independent of the HTTP framework serving them. Each runs as a
// coroutine in the request's flow (the framework adapter makes the request's segment current).
class Routes {
 public:
  // `downstream`: base URL /downstream calls ("" = none).
  Routes(boost::asio::io_context& io, std::string downstream);

  boost::asio::awaitable<Reply> Handle(std::string path);

  // Starts a background job outside any request: it becomes a trace of its own.
  void StartBackgroundJob();

 private:
  boost::asio::awaitable<Reply> Work();
  boost::asio::awaitable<Reply> Downstream();

  boost::asio::io_context& io_;
  const std::string downstream_;
};

}  // namespace xraysink::tools::demo

#endif  // XRAYSINK_TOOLS_DEMO_ROUTES_H_
